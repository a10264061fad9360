"""What the operator still knows of a run deleted while its watch was down."""

from sluice.controller import run_tombstone


def test_a_run_tombstone_keeps_whom_its_deletion_concerns() -> None:
    run = {
        "metadata": {
            "name": "b-1",
            "namespace": "etl",
            "uid": "u",
            "labels": {"sluice.dev/backfill-uid": "bf", "sluice.dev/run": "b-1"},
            "annotations": {"big": "x" * 1000},
        },
        "spec": {"rerunOf": {"name": "a"}, "pipelineRef": {"name": "p"}},
        "status": {"pipelineName": "p", "tasks": [{"name": "t"}] * 100},
    }
    assert run_tombstone(run) == {
        "metadata": {
            "name": "b-1",
            "namespace": "etl",
            "uid": "u",
            "labels": {"sluice.dev/backfill-uid": "bf"},
        },
        "spec": {"rerunOf": {"name": "a"}},
        "status": {"pipelineName": "p"},
    }
