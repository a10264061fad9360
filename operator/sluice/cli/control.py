"""`start`, `cancel` and `rerun`: the writes, each one API call the user's
own RBAC allows or refuses (create a PipelineRun, patch its spec).
"""

from __future__ import annotations

import json
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.cli.connection import GROUP, VERSION, Session, UsageError
from sluice.cli.output import print_objects
from sluice.cli.progress import EXIT_TIMED_OUT, run_end, task_changes
from sluice.cli.run_request import check_params, parse_params, rerun_body, rerun_refusal, start_body
from sluice.cli.terminal import Terminal
from sluice.cli.watching import follow_run
from sluice.views.run_view import RunView, run_view


def _created(session: Session, term: Terminal, created: dict[str, Any], output: str | None) -> str:
    name = str(created["metadata"]["name"])
    if output in {"json", "yaml", "name"}:
        print_objects([created], output, term.out, single=True)
    else:
        term.show(name)
        term.say(
            f"pipelinerun {name} created in {session.namespace}; "
            f"follow it: kubectl sluice graph {name} --watch"
        )
    return name


def wait_for_end(session: Session, term: Terminal, name: str, timeout: float | None) -> int:
    """Print each task's changes until the run ends; its exit code."""
    deadline = None if timeout is None else time.monotonic() + timeout
    before: RunView | None = None
    for obj in follow_run(session, session.namespace, name, deadline):
        view = run_view(obj)
        for line in task_changes(before, view, term.painter, term.now()):
            term.say(line)
        before = view
        if view.finished_for_good:
            text, code = run_end(view, term.painter, term.now())
            term.say(text)
            return code
    term.say(f"gave up waiting after {timeout:g}s; run {name} goes on")
    return EXIT_TIMED_OUT


def _create(session: Session, body: dict[str, Any]) -> dict[str, Any]:
    response = session.custom.create_namespaced_custom_object(
        GROUP, VERSION, session.namespace, "pipelineruns", body, _preload_content=False
    )
    created: dict[str, Any] = json.loads(response.data)
    return created


def start(
    session: Session,
    term: Terminal,
    pipeline: str,
    param_pairs: list[str],
    name: str | None,
    wait: bool,
    timeout: float | None,
    output: str | None,
) -> int:
    params = parse_params(param_pairs)
    try:
        found = session.get("pipelines", pipeline)
    except ApiException as error:
        if error.status == 404:
            raise UsageError(f'pipeline "{pipeline}" not found in namespace "{session.namespace}"') from error
        raise
    check_params(pipeline, found.get("spec") or {}, params)
    created = _create(session, start_body(pipeline, params, name))
    run = _created(session, term, created, output)
    return wait_for_end(session, term, run, timeout) if wait else 0


def rerun(
    session: Session,
    term: Terminal,
    run_name: str,
    name: str | None,
    wait: bool,
    timeout: float | None,
    output: str | None,
) -> int:
    view = run_view(session.get("pipelineruns", run_name))
    refusal = rerun_refusal(view)
    if refusal:
        raise UsageError(refusal)
    created = _create(session, rerun_body(view, name))
    run = _created(session, term, created, output)
    return wait_for_end(session, term, run, timeout) if wait else 0


def cancel(session: Session, term: Terminal, run_name: str) -> int:
    view = run_view(session.get("pipelineruns", run_name))
    if view.finished_for_good:
        term.say(f"run {run_name} already {view.phase}: nothing to cancel")
        return 0
    session.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        session.namespace,
        "pipelineruns",
        run_name,
        {"spec": {"cancelled": True}},
        _content_type="application/merge-patch+json",
    )
    term.show(f"pipelinerun.sluice.dev/{run_name} cancelled")
    return 0
