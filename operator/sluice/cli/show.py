"""`list` and `graph`: read-only views of runs."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.cli.connection import Session
from sluice.cli.graph import render_graph
from sluice.cli.output import print_objects
from sluice.cli.progress import run_end
from sluice.cli.table import render_runs
from sluice.cli.terminal import Terminal
from sluice.cli.watching import follow_run
from sluice.views.run_view import run_view

_CLEAR = "\x1b[H\x1b[2J"


def list_runs(
    session: Session, term: Terminal, output: str | None, pipeline: str | None, selector: str | None
) -> int:
    objects = session.list("pipelineruns", selector)
    views = [run_view(obj) for obj in objects]
    if pipeline is not None:
        keep = {v.uid for v in views if v.pipeline == pipeline}
        objects = [o for o in objects if o["metadata"].get("uid") in keep]
        views = [v for v in views if v.uid in keep]
    if output in {"json", "yaml", "name"}:
        for obj in objects:
            obj.setdefault("apiVersion", "sluice.dev/v1alpha1")
            obj.setdefault("kind", "PipelineRun")
        print_objects(objects, output, term.out)
        return 0
    lines = render_runs(
        views, term.now(), term.painter, wide=output == "wide", all_namespaces=session.all_namespaces
    )
    if not lines:
        where = "any namespace" if session.all_namespaces else f"{session.namespace} namespace"
        term.say(f"No pipelineruns found in {where}.")
    for line in lines:
        term.show(line)
    return 0


def _pipeline_spec(session: Session, run: dict[str, Any]) -> dict[str, Any] | None:
    """The referenced Pipeline's spec, to draw a run that has no snapshot yet."""
    if (run.get("status") or {}).get("pipelineSpec"):
        return None
    ref = ((run.get("spec") or {}).get("pipelineRef") or {}).get("name")
    if not ref:
        return None
    try:
        spec = session.get("pipelines", ref, run["metadata"]["namespace"]).get("spec")
    except ApiException:
        return None  # missing or not readable: the run's own status says why
    return spec if isinstance(spec, dict) else None


def graph(session: Session, term: Terminal, name: str, watch: bool, output: str | None) -> int:
    if output in {"json", "yaml"}:
        run = session.get("pipelineruns", name)
        print_objects([run], output, term.out, single=True)
        return 0
    if not watch:
        run = session.get("pipelineruns", name)
        for line in render_graph(
            run_view(run, _pipeline_spec(session, run)), term.painter, term.now(), term.width
        ):
            term.show(line)
        return 0
    fallback: dict[str, Any] | None = None
    for run in follow_run(session, session.namespace, name):
        if fallback is None:
            fallback = _pipeline_spec(session, run) or {}
        view = run_view(run, fallback or None)
        lines = render_graph(view, term.painter, term.now(), term.width)
        if term.interactive:
            term.out.write(_CLEAR)
        term.show("\n".join(lines) + ("" if term.interactive else "\n"))
        if view.finished_for_good:
            return run_end(view, term.painter, term.now())[1]
    return 0
