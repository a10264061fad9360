"""PipelineRun objects as the operator writes them, for the plugin's views."""

from __future__ import annotations

from typing import Any

T0 = "2026-11-24T10:00:00Z"


def spec_task(name: str, *deps: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "image": "busybox", **extra}
    if deps:
        body["dependsOn"] = list(deps)
    return body


def entry(name: str, phase: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "phase": phase, **extra}


def run_object(
    tasks: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    phase: str = "Running",
    final: list[dict[str, Any]] | None = None,
    name: str = "etl-1",
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"tasks": tasks}
    if final:
        spec["finally"] = final
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": "etl", "uid": f"uid-{name}", "creationTimestamp": T0},
        "spec": {"pipelineRef": {"name": "etl"}},
        "status": {
            "phase": phase,
            "pipelineName": "etl",
            "pipelineSpec": spec,
            "startTime": T0,
            "tasks": entries,
            **status,
        },
    }
