"""Task pods stuck before their container runs: shown on the task, failed after the pending deadline."""

from __future__ import annotations

from typing import Any

from sluice.api.v1alpha1 import PipelineRunSpec
from sluice.cache import UNEVENTFUL, _significant, trim_pod
from sluice.engine.observe import observe_pod
from sluice.engine.run_plan import RunFacts, plan_run
from tests.builders import T0, pod, snapshot, spec_of

SOON = "2026-11-24T10:00:10Z"
PAST = "2026-11-24T10:05:01Z"
PULL = 'Back-off pulling image "registry.example/etl:9"'
NO_NODE = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."


def pulling(**meta: Any) -> dict[str, Any]:
    stuck = pod("p", T0, phase="Pending", startTime=T0)
    stuck["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ImagePullBackOff", "message": PULL}
    }
    stuck["metadata"].update(meta)
    return stuck


def unschedulable() -> dict[str, Any]:
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": NO_NODE}
    stuck = pod("p", T0, phase="Pending", conditions=[condition])
    stuck["status"]["containerStatuses"] = []
    return stuck


def test_a_pod_that_cannot_pull_its_image_shows_why_and_wakes_the_run_at_the_deadline() -> None:
    obs = observe_pod(pulling(), SOON, pending_deadline=300)
    assert (obs.phase, obs.reason, obs.message) == ("Running", "ImagePullBackOff", PULL)
    assert obs.look_again_at == "2026-11-24T10:05:00Z"


def test_past_the_pending_deadline_the_attempt_fails_with_that_reason_and_its_pod_is_stopped() -> None:
    obs = observe_pod(pulling(), PAST, attempt=1, pending_deadline=300)
    assert (obs.phase, obs.reason, obs.attempt, obs.stop_pod) == ("Failed", "ImagePullBackOff", 1, True)
    assert obs.completion_time == "2026-11-24T10:05:00Z"
    assert PULL in (obs.message or "") and "pending deadline of 300s" in (obs.message or "")
    # Its pod being deleted (by that verdict) does not change the verdict.
    deleting = observe_pod(pulling(deletionTimestamp=PAST), PAST, attempt=1, pending_deadline=300)
    assert (deleting.phase, deleting.reason, deleting.stop_pod) == ("Failed", "ImagePullBackOff", False)
    assert deleting.message == obs.message and deleting.completion_time == obs.completion_time


def test_without_a_deadline_it_waits_for_ever_showing_why() -> None:
    obs = observe_pod(pulling(), "2026-11-30T00:00:00Z", pending_deadline=0)
    assert (obs.phase, obs.reason, obs.look_again_at) == ("Running", "ImagePullBackOff", None)


def test_an_unschedulable_pod_shows_the_schedulers_message() -> None:
    obs = observe_pod(unschedulable(), SOON, pending_deadline=300)
    assert (obs.phase, obs.reason, obs.message) == ("Running", "Unschedulable", NO_NODE)
    assert observe_pod(unschedulable(), PAST, pending_deadline=300).reason == "Unschedulable"


def test_the_cache_keeps_what_says_a_pod_is_stuck_and_only_that() -> None:
    trimmed = trim_pod(pulling())
    assert observe_pod(trimmed, SOON, pending_deadline=300).reason == "ImagePullBackOff"
    assert _significant(trimmed) != UNEVENTFUL
    assert observe_pod(trim_pod(unschedulable()), SOON, pending_deadline=300).reason == "Unschedulable"
    scheduled = pod("p", T0, phase="Pending", conditions=[{"type": "PodScheduled", "status": "True"}])
    creating = pod("q", T0, phase="Pending")
    creating["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    # A pod merely being scheduled or created costs no pass.
    assert _significant(trim_pod(scheduled)) == UNEVENTFUL
    assert _significant(trim_pod(creating)) == UNEVENTFUL


def test_the_run_says_which_task_cannot_start_and_posts_one_event() -> None:
    spec = spec_of([{"name": "extract"}, {"name": "load", "dependsOn": ["extract"]}])
    status = snapshot(spec, pipeline_name="sales", phase="Running")

    def facts(now: str, current: Any) -> RunFacts:
        stuck = observe_pod(pulling(), now, pending_deadline=300)
        return RunFacts(
            namespace="etl",
            name="run-1",
            uid="uid-1",
            created=T0,
            now=now,
            status=current,
            spec=PipelineRunSpec.model_validate({"pipelineRef": {"name": "sales"}}),
            pipeline_grace_seconds=10,
            tasks={"extract": stuck},
        )

    first = plan_run(facts(SOON, status))
    assert first.status is not None
    outcome = next(c for c in first.status.conditions or () if c.type == "Succeeded")
    assert (outcome.status, outcome.reason) == ("Unknown", "ImagePullBackOff")
    assert 'task "extract" cannot start' in outcome.message and PULL in outcome.message
    assert [e.reason for e in first.events] == ["TaskWaiting"]
    again = plan_run(facts("2026-11-24T10:00:20Z", first.status))
    assert again.events == ()
    failed = plan_run(facts(PAST, first.status))
    assert failed.status is not None and failed.status.phase == "Failed"
    assert [e.reason for e in failed.events] == ["TaskFailed", "Failed"]
    assert failed.stops == ("p",)
