"""The PipelineRuns `start` and `rerun` create, and the mistakes they refuse
before asking the cluster (a param that is not ``name=value``, a param the
pipeline does not declare, a rerun of a run still running). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.cli.connection import GROUP, VERSION, UsageError
from sluice.views.run_view import RunView

_API_VERSION = f"{GROUP}/{VERSION}"
# generateName adds 5 characters; a run's name must stay a 63-character label value.
_PREFIX_ROOM = 57
_RERUN_SUFFIX = re.compile(r"-rerun-[a-z0-9]{5}$")


def parse_params(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``-p name=value`` pairs, in order; the value may hold ``=``."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f'param "{pair}" is not NAME=VALUE')
        if name in parsed:
            raise UsageError(f'param "{name}" is given twice')
        parsed[name] = value
    return list(parsed.items())


def check_params(pipeline: str, spec: Mapping[str, Any], params: Sequence[tuple[str, str]]) -> None:
    """Refuse what the operator would fail the run for: unknown params, and
    required ones (no default) left out.
    """
    declared = {str(p.get("name")): p for p in spec.get("params") or () if isinstance(p, Mapping)}
    given = {name for name, _ in params}
    unknown = sorted(given - declared.keys())
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        raise UsageError(f"pipeline {pipeline} has no param {', '.join(unknown)} (its params: {names})")
    missing = sorted(name for name, p in declared.items() if p.get("default") is None and name not in given)
    if missing:
        raise UsageError(
            f"pipeline {pipeline} needs a value for {', '.join(missing)}: "
            + " ".join(f"-p {name}=VALUE" for name in missing)
        )


def _prefix(base: str) -> str:
    return base[:_PREFIX_ROOM].rstrip("-.") + "-"


def start_body(pipeline: str, params: Sequence[tuple[str, str]], name: str | None = None) -> dict[str, Any]:
    metadata = {"name": name} if name else {"generateName": _prefix(pipeline)}
    spec: dict[str, Any] = {"pipelineRef": {"name": pipeline}}
    if params:
        spec["params"] = [{"name": k, "value": v} for k, v in params]
    return {"apiVersion": _API_VERSION, "kind": "PipelineRun", "metadata": metadata, "spec": spec}


def rerun_refusal(run: RunView) -> str | None:
    """Why this run cannot be rerun from its failure, or None if it can."""
    if not run.finished_for_good:
        return (
            f"run {run.name} is {run.phase}: only a finished run can be rerun "
            f"(stop it first: kubectl sluice cancel {run.name})"
        )
    if run.phase == "Succeeded":
        return (
            f"run {run.name} succeeded: a rerun would reuse every task; "
            f"start a new run instead: kubectl sluice start {run.pipeline or 'PIPELINE'}"
        )
    return None


def rerun_body(run: RunView, name: str | None = None) -> dict[str, Any]:
    """A run of the failed or cancelled ``run`` that reuses what succeeded."""
    base = _RERUN_SUFFIX.sub("", run.name)
    metadata = {"name": name} if name else {"generateName": _prefix(f"{base[:50]}-rerun")}
    return {
        "apiVersion": _API_VERSION,
        "kind": "PipelineRun",
        "metadata": metadata,
        "spec": {"rerunOf": {"name": run.name}},
    }
