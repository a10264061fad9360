"""Ready / Reconciling / Stalled: the conditions GitOps tools read (kstatus,
Argo CD), derived from each kind's own conditions whenever one is set."""

from __future__ import annotations

from sluice.api.v1alpha1 import Condition
from sluice.engine.conditions import condition, set_condition

T0 = "2026-11-24T10:00:00Z"
T1 = "2026-11-24T10:05:00Z"


def health(conditions: list[Condition]) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in conditions if c.type in {"Ready", "Reconciling", "Stalled"}}


def test_a_run_reconciles_while_it_runs_then_is_ready_or_stalled() -> None:
    running = set_condition(None, condition("Succeeded", "Unknown", "Running", "1 of 3 tasks completed", T0))
    assert health(running) == {"Ready": ("False", "Running"), "Reconciling": ("True", "Running")}
    done = set_condition(running, condition("Succeeded", "True", "Succeeded", "3 of 3", T1))
    assert health(done) == {"Ready": ("True", "Succeeded")}
    failed = set_condition(running, condition("Succeeded", "False", "TaskFailed", 'task "b" failed', T1))
    assert health(failed) == {"Ready": ("False", "TaskFailed"), "Stalled": ("True", "TaskFailed")}
    stalled = next(c for c in failed if c.type == "Stalled")
    assert stalled.message == 'task "b" failed' and stalled.last_transition_time == T1


def test_a_refused_call_stalls_a_running_run_until_it_is_unblocked() -> None:
    running = set_condition(None, condition("Succeeded", "Unknown", "Running", "", T0))
    blocked = set_condition(running, condition("Blocked", "True", "Forbidden", "may not create pods", T1))
    assert health(blocked) == {"Ready": ("False", "Forbidden"), "Stalled": ("True", "Forbidden")}
    unblocked = set_condition(blocked, condition("Blocked", "False", "Unblocked", "", T1))
    assert health(unblocked) == {"Ready": ("False", "Running"), "Reconciling": ("True", "Running")}


def test_a_pipeline_is_ready_when_valid_and_stalled_when_not_or_when_it_cannot_read_assets() -> None:
    valid = set_condition(None, condition("Valid", "True", "Valid", "3 tasks form a valid DAG", T0))
    assert health(valid) == {"Ready": ("True", "Valid")}
    invalid = set_condition(valid, condition("Valid", "False", "CycleDetected", "a -> b -> a", T1))
    assert health(invalid) == {"Ready": ("False", "CycleDetected"), "Stalled": ("True", "CycleDetected")}
    unshared = set_condition(valid, condition("AssetsReadable", "False", "AssetNotShared", "x", T1))
    assert health(unshared) == {"Ready": ("False", "AssetNotShared"), "Stalled": ("True", "AssetNotShared")}


def test_transition_times_hold_while_the_health_does_not_change() -> None:
    first = set_condition(None, condition("Succeeded", "Unknown", "Running", "1 of 3", T0))
    later = set_condition(first, condition("Succeeded", "Unknown", "Running", "2 of 3", T1))
    ready = next(c for c in later if c.type == "Ready")
    assert ready.last_transition_time == T0 and ready.message == "2 of 3"
    assert [c.type for c in later] == ["Succeeded", "Ready", "Reconciling"]  # a stable order


def test_a_run_catches_up_with_its_generation_and_an_old_status_gets_its_health() -> None:
    from sluice.api.v1alpha1 import PipelineRunStatus
    from sluice.engine.run_plan import kept_current

    failed = condition("Succeeded", "False", "Cancelled", "cancelled", T0)
    # cancelled by an edit of the spec (generation 2): it says it saw it
    cancelled = PipelineRunStatus(
        phase="Cancelled", observed_generation=1, conditions=set_condition(None, failed)
    )
    kept = kept_current(cancelled, 2, T1)
    assert kept is not None and kept.observed_generation == 2
    assert kept_current(kept, 2, T1) is None  # once caught up: nothing more to write
    # finished before the health conditions existed (an upgrade)
    old = PipelineRunStatus(phase="Failed", observed_generation=1, conditions=[failed])
    fixed = kept_current(old, 1, T1)
    assert fixed is not None and health(fixed.conditions or []) == {
        "Ready": ("False", "Cancelled"),
        "Stalled": ("True", "Cancelled"),
    }
    assert kept_current(PipelineRunStatus(), 1, T1) is None  # not started yet: nothing to say


def test_an_old_pipeline_status_gets_its_health_and_dropping_assets_unstalls_it() -> None:
    from sluice.api.v1alpha1 import PipelineStatus
    from sluice.engine.pipeline_plan import without_asset_condition
    from sluice.engine.pipeline_status import pipeline_status

    valid = condition("Valid", "True", "Valid", "1 tasks form a valid DAG", T0)
    old = {
        "metadata": {"generation": 1},
        "spec": {"tasks": [{"name": "a", "image": "x"}]},
        "status": PipelineStatus(observed_generation=1, conditions=[valid]).to_api(),
    }
    status = pipeline_status(old, T1)
    assert status is not None and health(status.conditions or []) == {"Ready": ("True", "Valid")}
    unshared = set_condition([valid], condition("AssetsReadable", "False", "AssetNotShared", "x", T0))
    assert "Stalled" in health(unshared)
    assert health(without_asset_condition(unshared, T1) or []) == {"Ready": ("True", "Valid")}
