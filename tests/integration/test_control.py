"""Retries, timeouts, cancellation and parallelism on a real API server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client, watch

from tests.builders import pipeline, rerun, run, succeeded_condition, task, tasks_by_name
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration
QUICK = {"initialSeconds": 1, "factor": 2, "maxSeconds": 2}


def attempts_of(kube: Kube, namespace: str, run_name: str, task_name: str) -> list[str]:
    pods = [p for p in kube.pods(namespace, run_name) if p.metadata.labels["sluice.dev/task"] == task_name]
    return sorted(p.metadata.labels["sluice.dev/attempt"] for p in pods)


def test_task_that_succeeds_on_retry_lets_the_dag_go_on(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    flaky = task("extract", retries={"limit": 2, "backoff": QUICK})
    flaky["metadata"]["labels"]["sim.sluice.dev/fail"] = "first-attempt"
    kube.apply(namespace, pipeline("retry", [flaky, task("load", "extract")]), run("retry-1", "retry"))
    obj = kube.wait_run(namespace, "retry-1")
    tasks = tasks_by_name(obj)
    assert obj["status"]["phase"] == "Succeeded"
    assert tasks["extract"]["phase"] == "Succeeded"
    assert tasks["extract"]["attempts"] == 2
    assert attempts_of(kube, namespace, "retry-1", "extract") == ["0", "1"]
    assert tasks["load"]["phase"] == "Succeeded"


def test_retries_are_spent_then_the_task_fails_with_each_attempt_visible(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    seen: set[str] = set()
    doomed = task(
        "extract",
        fail=True,
        retries={"limit": 2, "backoff": QUICK},
        annotations={"sim.sluice.dev/message": "disk full"},
    )
    kube.apply(namespace, pipeline("doomed", [doomed]), run("doomed-1", "doomed"))

    def watch_retrying() -> bool:
        status = kube.run(namespace, "doomed-1").get("status") or {}
        for entry in status.get("tasks") or ():
            if entry.get("reason") == "Retrying":
                seen.add(entry["message"])
        return status.get("phase") == "Failed"

    wait_for("the run to fail after its retries", watch_retrying, timeout=60, interval=0.1)
    obj = kube.run(namespace, "doomed-1")
    extract = tasks_by_name(obj)["extract"]
    assert extract["phase"] == "Failed"
    assert extract["attempts"] == 3
    assert "disk full" in extract["message"]
    assert attempts_of(kube, namespace, "doomed-1", "extract") == ["0", "1", "2"]
    # Failure times have one-second precision, so the first backoff (1 s) may
    # pass unseen; the second (2 s) cannot.
    assert any(re.search(r"attempt [12] failed: .*disk full", message) for message in seen), seen


def test_task_timeout_fails_the_attempt_and_stops_its_pod(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline("slowtask", [task("sleep", duration="10m", timeoutSeconds=2)]),
        run("slowtask-1", "slowtask"),
    )
    [pod] = wait_for("the task's pod", lambda: kube.pods(namespace, "slowtask-1"))
    assert pod.spec.active_deadline_seconds == 2
    # kwok nodes do not enforce the deadline as a kubelet would: the operator does.
    obj = kube.wait_run(namespace, "slowtask-1", timeout=60)
    entry = tasks_by_name(obj)["sleep"]
    assert obj["status"]["phase"] == "Failed"
    assert entry["reason"] == "Timeout"
    assert "timeout of 2s" in entry["message"]
    wait_for("the overdue pod to be stopped and released", lambda: not kube.pods(namespace, "slowtask-1"))


def test_task_timeout_counts_while_its_pod_cannot_be_scheduled(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # No node matches, so the pod stays Pending and sends no further event:
    # only the pass that created it knows when its deadline is due.
    nowhere = {"nodeSelector": {"sluice.dev/test-no-such-node": "true"}}
    kube.apply(
        namespace,
        pipeline("stuck", [task("load", timeoutSeconds=2)], defaults=nowhere),
        run("stuck-1", "stuck"),
    )
    obj = kube.wait_run(namespace, "stuck-1", timeout=60)
    entry = tasks_by_name(obj)["load"]
    assert (obj["status"]["phase"], entry["reason"]) == ("Failed", "Timeout")
    assert "timeout of 2s" in entry["message"]
    wait_for("the unscheduled pod to be stopped and released", lambda: not kube.pods(namespace, "stuck-1"))


def test_run_timeout_stops_running_pods_and_fails_with_reason_timeout(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline("slowrun", [task("a", duration="10m"), task("b", "a")]),
        run("slowrun-1", "slowrun", timeoutSeconds=3),
    )
    obj = kube.wait_run(namespace, "slowrun-1", timeout=60)
    condition = succeeded_condition(obj)
    assert obj["status"]["phase"] == "Failed"
    assert condition["reason"] == "Timeout"
    tasks = tasks_by_name(obj)
    assert tasks["a"]["phase"] == "Cancelled"
    assert tasks["b"]["phase"] in ("Cancelled", "Skipped")
    wait_for("the running pod to be deleted", lambda: not kube.pods(namespace, "slowrun-1"))
    kube.wait_events(namespace, "slowrun-1", {"Timeout"})


def test_cancelling_a_run_stops_its_pods_and_marks_unfinished_tasks(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline("cancel", [task("done"), task("long", "done", duration="10m"), task("after", "long")]),
        run("cancel-1", "cancel"),
    )
    wait_for(
        "the long task to run",
        lambda: (
            tasks_by_name(kube.run(namespace, "cancel-1"))["long"]["phase"] == "Running"
            if (kube.run(namespace, "cancel-1").get("status") or {}).get("tasks")
            else None
        ),
    )
    kube.kubectl(
        "patch",
        "pipelinerun",
        "cancel-1",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"cancelled":true}}',
    )
    obj = kube.wait_run(namespace, "cancel-1", phases=("Cancelled",))
    tasks = tasks_by_name(obj)
    assert tasks["done"]["phase"] == "Succeeded"
    assert tasks["long"]["phase"] == "Cancelled"
    assert tasks["after"]["phase"] in ("Cancelled", "Skipped")
    assert succeeded_condition(obj)["reason"] == "Cancelled"
    wait_for(
        "the long task's pod to be deleted",
        lambda: all(p.metadata.labels["sluice.dev/task"] != "long" for p in kube.pods(namespace, "cancel-1")),
    )


def test_parallelism_caps_tasks_running_at_once(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    wide = [task(f"w{i}", duration="500ms") for i in range(6)]
    kube.apply(namespace, pipeline("wide", wide, parallelism=2), run("wide-1", "wide"))
    peak = 0

    def track() -> bool:
        nonlocal peak
        status: dict[str, Any] = kube.run(namespace, "wide-1").get("status") or {}
        running = sum(1 for t in status.get("tasks") or () if t["phase"] == "Running")
        peak = max(peak, running)
        return status.get("phase") == "Succeeded"

    wait_for("the wide run to finish", track, timeout=60, interval=0.05)
    assert 1 <= peak <= 2


def test_max_concurrent_runs_makes_extra_runs_wait_in_order(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline("one-at-a-time", [task("work", duration="1500ms")], maxConcurrentRuns=1),
        run("r1", "one-at-a-time"),
        run("r2", "one-at-a-time"),
        run("r3", "one-at-a-time"),
    )
    seen_waiting: set[str] = set()
    peak = 0

    def track() -> bool:
        nonlocal peak
        runs = kube.custom.list_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelineruns")[
            "items"
        ]
        statuses = {r["metadata"]["name"]: r.get("status") or {} for r in runs}
        peak = max(peak, sum(1 for s in statuses.values() if s.get("phase") == "Running"))
        for name, status in statuses.items():
            if any(c["reason"] == "WaitingForConcurrency" for c in status.get("conditions") or ()):
                seen_waiting.add(name)
        return all(s.get("phase") == "Succeeded" for s in statuses.values()) and len(statuses) == 3

    wait_for("all three runs, one at a time", track, timeout=90, interval=0.05)
    assert peak == 1
    assert seen_waiting >= {"r3"}
    starts = [kube.run(namespace, name)["status"]["startTime"] for name in ("r1", "r2", "r3")]
    assert starts == sorted(starts)


def test_rerun_reuses_succeeded_tasks_and_reruns_the_rest(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    first = task("first", results=[{"name": "rows"}], annotations={"sim.sluice.dev/result": "rows=42"})
    second = task("second", "first", duration="10m", args=["--rows=$(tasks.first.results.rows)"])
    kube.apply(namespace, pipeline("rerun", [first, second, task("third", "second")]), run("orig", "rerun"))
    wait_for(
        "second to run",
        lambda: (
            tasks_by_name(kube.run(namespace, "orig")).get("second", {}).get("phase") == "Running"
            if (kube.run(namespace, "orig").get("status") or {}).get("tasks")
            else None
        ),
    )
    kube.kubectl(
        "patch", "pipelinerun", "orig", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancelled":true}}'
    )
    kube.wait_run(namespace, "orig", phases=("Cancelled",))

    kube.apply(namespace, rerun("again", "orig"))
    wait_for("the rerun's second task", lambda: kube.pods(namespace, "again"))
    pods = {p.metadata.labels["sluice.dev/task"]: p for p in kube.pods(namespace, "again")}
    assert set(pods) == {"second"}
    assert pods["second"].spec.containers[0].args == ["--rows=42"]
    tasks = tasks_by_name(kube.run(namespace, "again"))
    assert (tasks["first"]["phase"], tasks["first"]["reason"]) == ("Succeeded", "Reused")
    assert tasks["first"]["results"] == [{"name": "rows", "value": "42"}]
    assert tasks["third"]["phase"] == "Pending"
    started = kube.wait_events(namespace, "again", {"Started"})
    assert "re-running run orig" in " ".join(e.message for e in started)


def test_rerun_of_an_unfinished_run_fails_clearly(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, pipeline("busy", [task("long", duration="10m")]), run("busy-1", "busy"))
    wait_for(
        "the run to start",
        lambda: (kube.run(namespace, "busy-1").get("status") or {}).get("phase") == "Running",
    )
    kube.apply(namespace, rerun("too-soon", "busy-1"))
    obj = kube.wait_run(namespace, "too-soon")
    assert succeeded_condition(obj)["reason"] == "RerunSourceNotFinished"


def test_a_pod_the_api_server_refuses_for_now_is_reported_and_retried(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "one-pod"},
        "spec": {"hard": {"pods": "1"}},
    }
    kube.apply(namespace, quota)
    wait_for(
        "the quota to be counted",
        lambda: (kube.core.read_namespaced_resource_quota("one-pod", namespace).status.hard or {}).get(
            "pods"
        ),
    )
    # Both tasks are ready at once; the quota admits one pod.
    kube.apply(
        namespace,
        pipeline("quota", [task("a", duration="10m"), task("b", duration="10m")]),
        run("quota-1", "quota"),
    )
    event = wait_for(
        "a PodCreateFailed event",
        lambda: next((e for e in kube.events(namespace, "quota-1") if e.reason == "PodCreateFailed"), None),
    )
    assert "exceeded quota" in event.message
    assert len(kube.pods(namespace, "quota-1")) == 1

    def truthful() -> dict[str, dict[str, Any]] | None:
        # The status never claims a pod that could not be created: the task
        # refused for now stays Pending while the other one runs.
        status = kube.run(namespace, "quota-1").get("status") or {}
        tasks = {t["name"]: t for t in status.get("tasks") or ()}
        phases = sorted(t["phase"] for t in tasks.values())
        return tasks if phases == ["Pending", "Running"] else None

    pending = next(
        t
        for t in wait_for("one task running, the other Pending", truthful).values()
        if t["phase"] == "Pending"
    )
    assert "podName" not in pending
    kube.kubectl("delete", "resourcequota", "one-pod", "-n", namespace)
    wait_for(
        "both tasks running",
        lambda: all(t["phase"] == "Running" for t in kube.run(namespace, "quota-1")["status"]["tasks"]),
        timeout=120,
    )
    assert len(kube.pods(namespace, "quota-1")) == 2


def test_a_pod_the_api_server_refuses_for_good_fails_its_task_without_retries(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # A label value the API server refuses: the pod can never be created.
    refused = task("refused", retries={"limit": 3, "backoff": {"initialSeconds": 0}})
    refused["metadata"]["labels"]["team"] = "not a valid label value!"
    kube.apply(namespace, pipeline("refusal", [task("fine"), refused]), run("refusal-1", "refusal"))
    obj = kube.wait_run(namespace, "refusal-1")
    tasks = tasks_by_name(obj)
    assert obj["status"]["phase"] == "Failed"
    assert tasks["fine"]["phase"] == "Succeeded"
    assert (tasks["refused"]["phase"], tasks["refused"]["reason"]) == ("Failed", "PodRejected")
    assert "the API server rejected the task's pod" in tasks["refused"]["message"]
    assert "attempts" not in tasks["refused"]  # retrying cannot help: no second attempt
    assert [p.metadata.labels["sluice.dev/task"] for p in kube.pods(namespace, "refusal-1")] == ["fine"]
    events = kube.wait_events(namespace, "refusal-1", {"TaskFailed", "Failed"})
    assert any('"refused"' in e.message for e in events if e.reason == "TaskFailed")


def test_a_workspace_claim_the_api_server_refuses_fails_the_run_before_any_pod(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    template = {"accessModes": ["NoSuchMode"], "resources": {"requests": {"storage": "1Gi"}}}
    kube.apply(
        namespace,
        pipeline("badclaim", [task("a")], workspace={"volumeClaimTemplate": template}),
        run("badclaim-1", "badclaim"),
    )
    obj = kube.wait_run(namespace, "badclaim-1")
    assert obj["status"]["phase"] == "Failed"
    condition = succeeded_condition(obj)
    assert condition["reason"] == "InvalidWorkspace"
    assert "NoSuchMode" in condition["message"]
    assert kube.pods(namespace, "badclaim-1") == []
    kube.wait_events(namespace, "badclaim-1", {"InvalidWorkspace"})


def test_a_quota_refusal_is_shown_retried_counted_on_one_event_and_passes_when_lifted(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-pods"), spec=client.V1ResourceQuotaSpec(hard={"pods": "0"})
    )
    kube.core.create_namespaced_resource_quota(namespace, quota)
    wait_for(
        "the quota to be enforced",
        lambda: kube.core.read_namespaced_resource_quota("no-pods", namespace).status.hard,
    )
    kube.apply(namespace, pipeline("quota", [task("a")]), run("quota-1", "quota"))

    def counted() -> Any:
        events = [e for e in kube.events(namespace, "quota-1") if e.reason == "PodCreateFailed"]
        return events if events and events[0].count >= 3 else None

    # Retried with backoff: the same news is one Event whose count grows.
    events = wait_for("the refusal to be retried and counted", counted)
    assert len(events) == 1 and "exceeded quota" in events[0].message
    # A restarted operator remembers no counts: it finds the Event by its
    # name and goes on counting there instead of posting a second one.
    operator.kill()
    [stopped_at] = counted()
    operator.start()
    # Every write to it, in order (a watch misses none): the restarted
    # operator goes on from the count before the kill, one by one.
    changes = watch.Watch().stream(
        kube.core.list_namespaced_event,
        namespace,
        field_selector=f"metadata.name={stopped_at.metadata.name}",
        resource_version=stopped_at.metadata.resource_version,
        timeout_seconds=60,
    )
    counts = []
    for change in changes:
        if change["type"] == "MODIFIED":
            counts.append(change["object"].count)
        if len(counts) == 2:
            break
    assert counts == [stopped_at.count + 1, stopped_at.count + 2]
    assert len(counted()) == 1
    blocked = next(
        c for c in kube.run(namespace, "quota-1")["status"]["conditions"] if c["type"] == "Blocked"
    )
    assert (blocked["status"], blocked["reason"]) == ("True", "Forbidden")
    assert "exceeded quota" in blocked["message"] and "RBAC" not in blocked["message"]

    kube.core.delete_namespaced_resource_quota("no-pods", namespace)
    obj = kube.wait_run(namespace, "quota-1")
    assert obj["status"]["phase"] == "Succeeded"
    cleared = next(c for c in obj["status"]["conditions"] if c["type"] == "Blocked")
    assert cleared["status"] == "False"
