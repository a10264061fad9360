"""A run's status must stay far below etcd's 1.5 MiB object limit even for a
500-task pipeline (peers' runs got stuck once status outgrew it)."""

import json

from sluice.api.v1alpha1 import PipelineRunStatus, PipelineSpec
from sluice.dag import build_graph
from sluice.observe import TaskObservation
from sluice.progress import compute_status

T0 = "2026-11-24T10:00:00Z"


def big_spec(tasks: int) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "tasks": [
                {
                    "name": f"task-number-{i:04d}-with-a-realistically-long-name"[:63],
                    "image": "registry.example.com/team/etl-image:2026.11.24",
                    "args": ["--input=/workspace/in", f"--part={i}", "--day=$(params.day)"],
                    "dependsOn": [f"task-number-{i - 1:04d}-with-a-realistically-long-name"[:63]]
                    if i
                    else None,
                }
                for i in range(tasks)
            ],
            "params": [{"name": "day", "default": "2026-01-01"}],
        }
    )


def test_a_500_task_run_with_every_task_failed_verbosely_fits_in_etcd() -> None:
    spec = big_spec(500)
    graph = build_graph(spec)
    observed = {
        name: TaskObservation(
            job_name=f"run-{name}"[:63],
            phase="Failed",
            pod_name=f"run-{name}-abcde"[:69],
            start_time=T0,
            completion_time=T0,
            exit_code=1,
            reason="Error",
            message="x" * 5000,
        )
        for name in graph.order
    }
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    size = len(json.dumps(status.to_api()))
    assert size < 1_000_000, f"{size} bytes"
    assert all(len(t.message or "") <= 1024 for t in status.tasks or ())
    [condition] = status.conditions or []
    assert "and 490 more" in condition.message


def test_a_typical_500_task_run_status_is_small() -> None:
    spec = big_spec(500)
    graph = build_graph(spec)
    observed = {
        name: TaskObservation(f"run-{name}"[:63], "Succeeded", f"run-{name}-abcde"[:69], T0, T0)
        for name in graph.order
    }
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    assert len(json.dumps(status.to_api())) < 400_000
