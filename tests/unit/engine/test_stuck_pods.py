"""Task pods stuck before their container runs: shown on the task, failed after the pending deadline."""

from __future__ import annotations

from typing import Any

from sluice.cache import UNEVENTFUL, ChildCache, _significant, trim_pod
from sluice.engine.observe import observe_pod
from sluice.engine.run_plan import plan_run
from tests.builders import T0, pod, run_facts, snapshot, spec_of

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


def test_an_unschedulable_pod_shows_the_schedulers_message_and_waits_for_a_node() -> None:
    obs = observe_pod(unschedulable(), SOON, pending_deadline=300)
    assert (obs.phase, obs.reason, obs.message) == ("Running", "Unschedulable", NO_NODE)
    # No deadline of its own: a node may come (an autoscaler, a busy cluster).
    later = observe_pod(unschedulable(), "2026-11-24T12:00:00Z", pending_deadline=300)
    assert (later.phase, later.reason, later.look_again_at) == ("Running", "Unschedulable", None)


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


OWNER = {
    "apiVersion": "sluice.dev/v1alpha1",
    "kind": "PipelineRun",
    "name": "run-1",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}


def test_the_run_says_which_task_cannot_start_and_posts_one_event() -> None:
    spec = spec_of([{"name": "extract"}, {"name": "load", "dependsOn": ["extract"]}])
    status = snapshot(spec, pipeline_name="sales", phase="Running")

    def facts(now: str, current: Any) -> Any:
        return run_facts(current, now, extract=observe_pod(pulling(), now, pending_deadline=300))

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


def killed(stuck: dict[str, Any], at: str) -> dict[str, Any]:
    """The pod as the kubelet leaves it once deleted: its waiting state gone."""
    gone = pod("p", T0, {"exitCode": 137, "reason": "ContainerStatusUnknown"}, "Failed", startTime=T0)
    gone["metadata"].update(stuck["metadata"], deletionTimestamp=at, resourceVersion="9")
    return gone


def test_an_attempt_failed_past_the_deadline_keeps_its_verdict_once_the_kubelet_killed_its_pod() -> None:
    cache = ChildCache()
    stuck = pulling(resourceVersion="5")
    stuck["metadata"]["ownerReferences"] = [OWNER]
    cache.upsert_pod(stuck)
    verdict = observe_pod(cache.pods_of("uid-1")[0], PAST, pending_deadline=300)
    gone = killed(stuck, PAST)
    gone["metadata"]["ownerReferences"] = [OWNER]
    cache.upsert_pod(gone)
    again = observe_pod(cache.pods_of("uid-1")[0], "2026-11-24T10:05:30Z", pending_deadline=300)
    assert (again.phase, again.reason, again.message, again.completion_time) == (
        verdict.phase,
        verdict.reason,
        verdict.message,
        verdict.completion_time,
    )
    assert again.stop_pod is False


def test_a_recorded_outcome_stands_whatever_a_later_view_of_its_pod_says() -> None:
    spec = spec_of([{"name": "extract"}, {"name": "other"}])
    status = snapshot(spec, pipeline_name="sales", phase="Running")
    failed = plan_run(run_facts(status, PAST, extract=observe_pod(pulling(), PAST, pending_deadline=300)))
    assert failed.status is not None
    recorded = next(t for t in failed.status.tasks or () if t.name == "extract")
    retold = observe_pod(killed(pulling(), PAST), "2026-11-24T10:06:00Z")
    assert retold.reason == "PodDeleted"  # what the pod alone would say now
    later = plan_run(run_facts(failed.status, "2026-11-24T10:06:00Z", extract=retold))
    status_after = later.status or failed.status
    assert next(t for t in status_after.tasks or () if t.name == "extract") == recorded


def test_a_timeout_that_came_first_is_not_retold_as_the_pending_deadline() -> None:
    stuck = pulling()
    stuck["spec"] = {"activeDeadlineSeconds": 60}
    obs = observe_pod(stuck, PAST, pending_deadline=300)
    assert (obs.phase, obs.reason) == ("Failed", "Timeout")


def test_an_image_pull_counts_from_when_the_pod_was_scheduled() -> None:
    late = pulling()
    late["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-24T10:04:00Z"}
    ]
    obs = observe_pod(trim_pod(late), PAST, pending_deadline=300)
    assert (obs.phase, obs.reason, obs.look_again_at) == (
        "Running",
        "ImagePullBackOff",
        "2026-11-24T10:09:00Z",
    )


def test_errimagepull_and_imagepullbackoff_are_one_reason_and_cost_no_pass_when_they_alternate() -> None:
    err = pulling()
    err["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ErrImagePull", "message": "i/o timeout"}
    }
    assert observe_pod(err, SOON, pending_deadline=300).reason == "ImagePullBackOff"
    assert _significant(trim_pod(err)) == _significant(trim_pod(pulling()))


def test_a_gated_pod_is_not_stuck_and_costs_no_pass() -> None:
    gated = pod(
        "p",
        T0,
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    )
    assert _significant(trim_pod(gated)) == UNEVENTFUL
    assert observe_pod(gated, PAST, pending_deadline=300).reason is None


def test_a_retry_follows_an_attempt_failed_past_the_deadline() -> None:
    spec = spec_of([{"name": "extract", "retries": {"limit": 1, "backoff": {"initialSeconds": 0}}}])
    status = snapshot(spec, pipeline_name="sales", phase="Running")
    plan = plan_run(run_facts(status, PAST, extract=observe_pod(pulling(), PAST, pending_deadline=300)))
    assert [(s.task, s.attempt) for s in plan.starts] == [("extract", 1)]
    assert plan.stops == ("p",)


def test_one_event_per_task_however_many_of_its_instances_cannot_start() -> None:
    from sluice.api.v1alpha1 import InstanceStatus, PipelineRunStatus, TaskRunStatus
    from sluice.engine.run_plan import announcements

    stuck = [
        InstanceStatus(index=i, phase="Running", reason="ImagePullBackOff", message=PULL) for i in range(3)
    ]
    new = PipelineRunStatus(tasks=[TaskRunStatus(name="fan", phase="Running", instances=stuck)])
    events = announcements(PipelineRunStatus(tasks=[TaskRunStatus(name="fan", phase="Running")]), new)
    assert [(e.reason, e.message) for e in events] == [
        ("TaskWaiting", f'task "fan" cannot start: ImagePullBackOff: {PULL} (3 instances)')
    ]
    assert announcements(new, new) == ()
