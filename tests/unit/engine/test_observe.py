from datetime import UTC, datetime
from typing import Any

from sluice.api.v1alpha1 import RetryPolicy
from sluice.engine.observe import (
    CreatedPod,
    RefusedCreate,
    TrackedPod,
    observe_pod,
    observe_tasks,
    tracked_pod,
)
from sluice.engine.retry import next_retry
from tests.builders import T0, pod

LATER = "2026-11-24T10:00:05Z"
MUCH_LATER = "2026-11-24T11:00:00Z"


def test_succeeded_pod_is_a_succeeded_attempt_with_its_output() -> None:
    done = pod("p", T0, {"exitCode": 0, "finishedAt": LATER, "message": "rows=3"}, "Succeeded", startTime=T0)
    obs = observe_pod(done, MUCH_LATER, attempt=2)
    assert (obs.phase, obs.pod_name, obs.attempt) == ("Succeeded", "p", 2)
    assert (obs.start_time, obs.completion_time, obs.output) == (T0, LATER, "rows=3")


def test_failed_pod_reports_exit_code_and_its_log_tail() -> None:
    failed = pod("p", T0, {"exitCode": 3, "reason": "Error", "message": "no such table\n"}, "Failed")
    obs = observe_pod(failed, LATER)
    assert (obs.phase, obs.exit_code, obs.reason) == ("Failed", 3, "Error")
    assert obs.message == "exit code 3: no such table"


def test_running_and_pending_pods_are_running_attempts() -> None:
    assert observe_pod(pod("p", phase="Running"), LATER).phase == "Running"
    assert observe_pod(pod("p", phase="Pending"), LATER).phase == "Running"
    assert observe_pod(pod("p"), LATER).phase == "Running"


def test_long_messages_keep_their_tail() -> None:
    failed = pod("p", T0, {"exitCode": 1, "message": "x" * 5000 + "THE END"}, "Failed")
    obs = observe_pod(failed, LATER)
    assert obs.message is not None and len(obs.message) <= 1024
    assert obs.message.endswith("THE END")


def with_deadline(body: dict[str, Any], seconds: int) -> dict[str, Any]:
    body["spec"] = {"activeDeadlineSeconds": seconds}
    return body


def test_a_pod_past_its_deadline_is_a_timeout_even_while_it_still_runs() -> None:
    running = with_deadline(pod("p", phase="Running", startTime=T0), 2)
    before = observe_pod(running, "2026-11-24T10:00:01Z")
    assert (before.phase, before.look_again_at) == ("Running", "2026-11-24T10:00:02Z")
    after = observe_pod(running, LATER)
    assert (after.phase, after.reason, after.stop_pod) == ("Failed", "Timeout", True)
    assert after.completion_time == "2026-11-24T10:00:02Z"
    assert after.message == "the task exceeded its timeout of 2s"


def test_the_kubelets_deadline_and_a_stopped_overdue_pod_are_timeouts_not_stopped_again() -> None:
    by_kubelet = with_deadline(pod("p", phase="Failed", startTime=T0, reason="DeadlineExceeded"), 2)
    assert (observe_pod(by_kubelet, LATER).reason, observe_pod(by_kubelet, LATER).stop_pod) == (
        "Timeout",
        False,
    )
    stopped = with_deadline(pod("p", phase="Running", startTime=T0), 2)
    stopped["metadata"]["deletionTimestamp"] = LATER
    obs = observe_pod(stopped, "2026-11-24T10:00:03Z")
    assert (obs.phase, obs.reason, obs.stop_pod) == ("Failed", "Timeout", False)


def test_evictions_preemptions_and_node_loss_fail_the_attempt_with_their_own_reason() -> None:
    cases = {
        "EvictionByEvictionAPI": "Evicted",
        "PreemptionByScheduler": "Preempted",
        "DeletionByTaintManager": "NodeLost",
        "DeletionByPodGC": "NodeLost",
    }
    for condition_reason, reason in cases.items():
        disrupted = pod(
            "p",
            T0,
            {"exitCode": 143, "reason": "Error"},
            "Failed",
            conditions=[
                {"type": "DisruptionTarget", "status": "True", "reason": condition_reason, "message": "why"}
            ],
        )
        disrupted["metadata"]["deletionTimestamp"] = LATER
        obs = observe_pod(disrupted, MUCH_LATER)
        assert (obs.phase, obs.reason, obs.exit_code) == ("Failed", reason, None), condition_reason
        assert obs.message is not None and "why" in obs.message
    evicted = pod("p", T0, None, "Failed", reason="Evicted", message="low on memory")
    assert (observe_pod(evicted, LATER).reason, observe_pod(evicted, LATER).message) == (
        "Evicted",
        "low on memory",
    )


def test_a_deleted_pod_is_lost_once_its_grace_period_is_over_and_not_before() -> None:
    deleting = pod("p", phase="Running", startTime=T0)
    deleting["metadata"]["deletionTimestamp"] = LATER
    assert observe_pod(deleting, "2026-11-24T10:00:04Z").phase == "Running"
    lost = observe_pod(deleting, LATER)
    assert (lost.phase, lost.reason) == ("Failed", "PodDeleted")
    # A container that failed on its own before the delete keeps its own reason.
    failed = pod("p", T0, {"exitCode": 2, "reason": "Error", "message": "bad row"}, "Failed")
    failed["metadata"]["deletionTimestamp"] = LATER
    assert (observe_pod(failed, LATER).reason, observe_pod(failed, LATER).exit_code) == ("Error", 2)


def test_each_task_is_read_from_its_newest_attempt() -> None:
    pods = [
        pod("load-0", T0, {"exitCode": 1}, "Failed", task="load", attempt=0),
        pod("load-1", T0, None, "Running", task="load", attempt=1),
        pod("other", T0, None, "Running", task="not-a-task-of-this-run"),
    ]
    observed = observe_tasks({"load", "report"}, pods, LATER)
    assert set(observed) == {"load"}
    assert (observed["load"].pod_name, observed["load"].attempt, observed["load"].phase) == (
        "load-1",
        1,
        "Running",
    )


def test_a_pod_created_but_not_yet_seen_counts_as_running_and_a_refused_one_as_failed() -> None:
    pods = [
        pod("load-0", T0, {"exitCode": 1}, "Failed", task="load"),
        pod("copy-0", T0, {"exitCode": 1}, "Failed", task="copy"),
    ]
    observed = observe_tasks(
        {"load", "copy", "fresh"},
        pods,
        LATER,
        created=[CreatedPod("load-1", "load", 1), CreatedPod("fresh-0", "fresh", 0)],
        refused=[RefusedCreate("copy-1", "spec.tolerations: Invalid value", T0, "copy", 1)],
    )
    assert (observed["load"].pod_name, observed["load"].phase, observed["load"].attempt) == (
        "load-1",
        "Running",
        1,
    )
    assert observed["fresh"].phase == "Running"
    refused = observed["copy"]
    assert (refused.phase, refused.reason, refused.attempt) == ("Failed", "PodRejected", 1)
    assert refused.message is not None and "spec.tolerations: Invalid value" in refused.message


def test_a_created_pod_the_watch_already_shows_is_read_from_the_watch() -> None:
    done = pod("load-0", T0, {"exitCode": 0}, "Succeeded", task="load")
    observed = observe_tasks({"load"}, [done], LATER, [CreatedPod("load-0", "load", 0)])
    assert observed["load"].phase == "Succeeded"


def test_only_pods_holding_the_finalizer_are_tracked_and_ended_means_terminal_or_deleting() -> None:
    running = pod("a", phase="Running", task="load", attempt=1)
    assert tracked_pod(running, "f") is None
    running["metadata"]["finalizers"] = ["other", "f"]
    assert tracked_pod(running, "f") == TrackedPod("a", "load", 1, ended=False)
    running["metadata"]["deletionTimestamp"] = LATER
    assert tracked_pod(running, "f") == TrackedPod("a", "load", 1, ended=True, deleting=True)
    done = pod("b", phase="Succeeded", task="load")
    done["metadata"]["finalizers"] = ["f"]
    assert tracked_pod(done, "f") == TrackedPod("b", "load", 0, ended=True)


def test_a_deleting_pod_is_looked_at_again_when_its_grace_period_ends() -> None:
    # A node that is gone sends no more events: the pass must wake by itself.
    deleting = with_deadline(pod("p", phase="Running", startTime=T0), 600)
    deleting["metadata"]["deletionTimestamp"] = LATER
    assert observe_pod(deleting, "2026-11-24T10:00:01Z").look_again_at == LATER


def test_a_pod_that_never_starts_times_out_from_its_creation() -> None:
    unscheduled = with_deadline(pod("p", created=T0, phase="Pending"), 2)
    assert observe_pod(unscheduled, "2026-11-24T10:00:01Z").look_again_at == "2026-11-24T10:00:02Z"
    obs = observe_pod(unscheduled, LATER)
    assert (obs.phase, obs.reason, obs.stop_pod) == ("Failed", "Timeout", True)


def test_the_kubelets_disruptions_are_told_apart_by_the_pods_reason() -> None:
    by_kubelet = [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}]
    shutdown = pod("p", T0, None, "Failed", reason="Terminated", conditions=by_kubelet)
    pressure = pod("p", T0, None, "Failed", reason="Evicted", conditions=by_kubelet)
    assert observe_pod(shutdown, LATER).reason == "NodeShutdown"
    assert observe_pod(pressure, LATER).reason == "Evicted"


def test_an_attempt_whose_pod_name_someone_else_took_fails_for_good_and_says_so() -> None:
    taken = RefusedCreate("load-0", "name taken", T0, "load", 0, taken=True)
    observed = observe_tasks({"load"}, [], LATER, refused=[taken])["load"]
    assert (observed.phase, observed.reason) == ("Failed", "PodNameTaken")
    assert observed.message is not None and "load-0" in observed.message
    assert "does not control" in observed.message
    assert next_retry(RetryPolicy(limit=3), observed, datetime.now(UTC)) is None
