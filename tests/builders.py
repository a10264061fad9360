"""Builders shared by the unit and integration tests.

One home for "a pipeline with these tasks", "a run of it", "a task pod that
ended like this", so tests state only what their case is about.
"""

from __future__ import annotations

from typing import Any

from sluice.api.v1alpha1 import PipelineRunStatus, PipelineSpec

IMAGE = "busybox:1.36"
T0 = "2026-11-24T10:00:00Z"

# --- API objects, as a user writes them (dicts for kubectl apply) --------------------


def task(name: str, *deps: str, duration: str = "0s", fail: bool = False, **extra: Any) -> dict[str, Any]:
    """A task whose simulated (kwok) pod runs for ``duration`` and then succeeds or fails."""
    labels = {"sim.sluice.dev/fail": "true"} if fail else {}
    annotations = {"sim.sluice.dev/duration": duration, **extra.pop("annotations", {})}
    spec: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "metadata": {"labels": labels, "annotations": annotations},
        **extra,
    }
    if deps:
        spec["dependsOn"] = list(deps)
    return spec


def pipeline(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }


def run(name: str, pipeline_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": pipeline_name}, **spec},
    }


def rerun(name: str, source: str) -> dict[str, Any]:
    """A PipelineRun that re-runs ``source``."""
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {"rerunOf": {"name": source}},
    }


def tasks_by_name(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in obj["status"]["tasks"]}


def succeeded_condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Succeeded")


# --- parsed models, for the pure engine ------------------------------------------------


def spec_of(
    tasks: list[dict[str, Any]], final: list[dict[str, Any]] | None = None, **spec: Any
) -> PipelineSpec:
    """A PipelineSpec from task dicts; each task gets an image unless it names one."""
    body: dict[str, Any] = {"tasks": [{"image": IMAGE, **t} for t in tasks], **spec}
    if final:
        body["finally"] = [{"image": IMAGE, **t} for t in final]
    return PipelineSpec.model_validate(body)


def dag_of(*tasks: tuple[str, list[str]]) -> PipelineSpec:
    """A PipelineSpec from (name, dependencies) pairs."""
    return spec_of([{"name": name, "dependsOn": deps} for name, deps in tasks])


def snapshot(spec: PipelineSpec, start: str = T0, **status: Any) -> PipelineRunStatus:
    """A run's status just after its spec snapshot was recorded."""
    return PipelineRunStatus(pipeline_spec=spec, start_time=start, **status)


# --- child objects as the watches deliver them -------------------------------------------


def pod(
    name: str,
    created: str = T0,
    terminated: dict[str, Any] | None = None,
    phase: str | None = None,
    *,
    task: str | None = None,
    attempt: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A task pod as the watch delivers it; ``task`` adds the operator's labels,
    ``extra`` goes into its status (startTime, reason, conditions, ...).
    """
    state = {"terminated": terminated} if terminated else {"running": {}}
    status: dict[str, Any] = {"containerStatuses": [{"name": "task", "state": state}], **extra}
    if phase:
        status["phase"] = phase
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if task is not None:
        meta["labels"] = {"sluice.dev/task": task, "sluice.dev/attempt": str(attempt)}
    return {"metadata": meta, "status": status}


def run_facts(
    status: PipelineRunStatus,
    now: str,
    pipeline: str = "sales",
    name: str = "run-1",
    uid: str = "uid-1",
    **tasks: Any,
) -> Any:
    """What one pass of a started run knows: its status and each task's latest attempt."""
    from sluice.api.v1alpha1 import PipelineRunSpec
    from sluice.engine.run_plan import RunFacts

    return RunFacts(
        namespace="etl",
        name=name,
        uid=uid,
        created=T0,
        now=now,
        status=status,
        spec=PipelineRunSpec.model_validate({"pipelineRef": {"name": pipeline}}),
        pipeline_grace_seconds=10,
        tasks=tasks,
    )
