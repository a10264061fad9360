"""Task pods on a real API server: what owning pods directly must keep.

A Job used to guarantee these; with one pod per attempt the operator does:
an outcome is never lost to a pod deleted early (the tracking finalizer),
a disrupted attempt is a failed attempt that is retried, and a restarted
operator never starts an attempt twice (deterministic pod names).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from sluice.engine.naming import attempt_name, claim_name
from tests.builders import pipeline, run, task, tasks_by_name
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration
FINALIZER = "sluice.dev/task-outcome"


def pods_of(kube: Kube, namespace: str, run_name: str, task_name: str) -> list[Any]:
    return [p for p in kube.pods(namespace, run_name) if p.metadata.labels["sluice.dev/task"] == task_name]


def test_an_outcome_and_its_results_survive_the_pod_being_deleted_before_they_were_recorded(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    producer = task(
        "count", duration="5s", results=[{"name": "rows"}], annotations={"sim.sluice.dev/result": "rows=42"}
    )
    kube.apply(namespace, pipeline("survive", [producer]), run("survive-1", "survive"))
    [pod] = wait_for("the task's pod", lambda: kube.pods(namespace, "survive-1"))
    operator.kill()
    try:
        # Killed while the pod runs (5 s): nobody has recorded anything yet.
        running = kube.core.read_namespaced_pod(pod.metadata.name, namespace)
        assert running.status.phase != "Succeeded" and running.metadata.finalizers == [FINALIZER]
        # With nobody recording, the pod succeeds and is deleted by hand.
        wait_for(
            "the pod to succeed",
            lambda: kube.core.read_namespaced_pod(pod.metadata.name, namespace).status.phase == "Succeeded",
        )
        kube.core.delete_namespaced_pod(pod.metadata.name, namespace)
        held = kube.core.read_namespaced_pod(pod.metadata.name, namespace)
        assert held.metadata.deletion_timestamp is not None  # held by the finalizer, not gone
    finally:
        operator.start()
    obj = kube.wait_run(namespace, "survive-1")
    entry = tasks_by_name(obj)["count"]
    assert obj["status"]["phase"] == "Succeeded"
    assert (entry["phase"], entry["podName"]) == ("Succeeded", pod.metadata.name)
    assert entry["results"] == [{"name": "rows", "value": "42"}]
    wait_for("the recorded pod to be released and gone", lambda: not kube.pods(namespace, "survive-1"))


def test_an_evicted_attempt_fails_with_its_own_reason_and_is_retried(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    long = task("long", duration="10m", retries={"limit": 1, "backoff": {"initialSeconds": 2}})
    kube.apply(namespace, pipeline("evict", [long]), run("evict-1", "evict"))
    [first] = wait_for(
        "the first attempt to run",
        lambda: [p for p in pods_of(kube, namespace, "evict-1", "long") if p.status.phase == "Running"],
    )
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=first.metadata.name, namespace=namespace))
    kube.core.create_namespaced_pod_eviction(first.metadata.name, namespace, eviction)
    messages: set[str] = set()

    def retried() -> bool:
        entry = tasks_by_name(kube.run(namespace, "evict-1"))["long"]
        if entry.get("reason") == "Retrying":
            messages.add(entry["message"])
        return entry.get("attempts") == 2 and entry["phase"] == "Running" and entry.get("reason") is None

    wait_for("the second attempt to run", retried, timeout=60, interval=0.05)
    assert any("attempt 1 failed" in m and "stopped by the cluster" in m for m in messages), messages
    assert sorted(
        p.metadata.labels["sluice.dev/attempt"] for p in pods_of(kube, namespace, "evict-1", "long")
    ) in (
        ["0", "1"],
        ["1"],
    )
    wait_for(
        "the evicted attempt's pod to be released and gone",
        lambda: (
            [p.metadata.name for p in pods_of(kube, namespace, "evict-1", "long")] != []
            and first.metadata.name
            not in [p.metadata.name for p in pods_of(kube, namespace, "evict-1", "long")]
        ),
    )


def test_a_finished_runs_pods_stay_for_their_logs_without_finalizers(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, pipeline("kept", [task("a"), task("b", "a")]), run("kept-1", "kept"))
    assert kube.wait_run(namespace, "kept-1")["status"]["phase"] == "Succeeded"
    pods = wait_for(
        "both pods released",
        lambda: (
            pods
            if len(pods := kube.pods(namespace, "kept-1")) == 2
            and all(not p.metadata.finalizers for p in pods)
            else None
        ),
    )
    assert {p.status.phase for p in pods} == {"Succeeded"}
    assert all(p.metadata.owner_references[0].kind == "PipelineRun" for p in pods)


def test_a_run_deleted_while_the_operator_is_down_has_its_pods_released_when_it_returns(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, pipeline("away", [task("long", duration="10m")]), run("away-1", "away"))
    wait_for(
        "the pod to run", lambda: [p for p in kube.pods(namespace, "away-1") if p.status.phase == "Running"]
    )
    operator.kill()
    try:
        kube.kubectl("delete", "pipelinerun", "away-1", "-n", namespace, "--wait=false")
        # The garbage collector deletes the pod, and the finalizer holds it.
        [held] = wait_for(
            "the pod to be held by its finalizer",
            lambda: [p for p in kube.pods(namespace, "away-1") if p.metadata.deletion_timestamp],
        )
        assert held.metadata.finalizers == [FINALIZER]
    finally:
        operator.start()
    wait_for("the pod to be released and gone", lambda: not kube.pods(namespace, "away-1"))


def test_a_foreground_delete_starts_nothing_more_and_completes(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Deleting the pods would read as failures: a retry, and an AnyFailed
    # handler, must not start while the run itself is being deleted.
    long = task("long", duration="10m", retries={"limit": 3, "backoff": {"initialSeconds": 0}})
    handler = task("on-failure", "long", triggerRule="AnyFailed")
    kube.apply(namespace, pipeline("fg", [long, handler]), run("fg-1", "fg"))
    [first] = wait_for("the pod to run", lambda: kube.pods(namespace, "fg-1"))
    kube.kubectl("delete", "pipelinerun", "fg-1", "-n", namespace, "--cascade=foreground", "--wait=false")

    def gone() -> bool:
        names = {p.metadata.name for p in kube.pods(namespace, "fg-1")}
        assert names <= {first.metadata.name}, f"started while being deleted: {names}"
        runs = kube.custom.list_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelineruns")
        return not names and not runs["items"]

    wait_for("the run and its pod to be gone", gone, timeout=60, interval=0.05)


def test_a_pod_someone_else_created_under_an_attempts_name_is_never_taken_for_it(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Attempt names are deterministic (so a restarted operator never starts a
    # task twice), hence predictable: anyone who may create pods can create
    # the next task's pod first, copying the run's labels and even its UID as
    # a controller reference. Neither that pod's outcome nor its result may
    # count; the task fails with a reason that says what happened, and the
    # operator leaves the stranger's pod alone.
    producer = task(
        "count", duration="6s", results=[{"name": "rows"}], annotations={"sim.sluice.dev/result": "rows=1"}
    )
    reader = task("load", "count", args=["--rows=$(tasks.count.results.rows)"])
    kube.apply(namespace, pipeline("genuine", [producer, reader]), run("genuine-1", "genuine"))
    [real] = wait_for("the first task's pod", lambda: kube.pods(namespace, "genuine-1"))
    owner = kube.run(namespace, "genuine-1")["metadata"]
    name = attempt_name("genuine-1", owner["uid"], "load")
    forged = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={**real.metadata.labels, "sluice.dev/task": "load"},
            annotations={"sim.sluice.dev/result": "rows=666", "sim.sluice.dev/duration": "0s"},
            owner_references=[
                client.V1OwnerReference(
                    api_version="sluice.dev/v1alpha1",
                    kind="PipelineRun",
                    name=owner["name"],
                    uid=owner["uid"],
                    controller=True,
                )
            ],
        ),
        spec=real.spec,
    )
    forged.spec.node_name = None
    kube.core.create_namespaced_pod(namespace, forged)
    obj = kube.wait_run(namespace, "genuine-1")
    tasks = tasks_by_name(obj)
    assert obj["status"]["phase"] == "Failed"
    assert tasks["count"]["phase"] == "Succeeded"
    assert tasks["count"]["results"] == [{"name": "rows", "value": "1"}]
    load = tasks["load"]
    assert (load["phase"], load["reason"]) == ("Failed", "PodNameTaken")
    assert name in load["message"] and "does not control" in load["message"]
    assert "results" not in load
    stranger = kube.core.read_namespaced_pod(name, namespace)
    assert stranger.metadata.deletion_timestamp is None
    assert FINALIZER not in (stranger.metadata.finalizers or [])
    events = kube.wait_events(namespace, "genuine-1", {"TaskFailed"})
    assert any("PodNameTaken" in e.message or name in e.message for e in events if e.reason == "TaskFailed")


def test_a_claim_someone_else_created_under_the_workspaces_name_is_never_mounted(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # The same for the run's workspace: a claim made beforehand under its
    # name could hold anything, so the run fails instead of mounting it.
    template = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    kube.apply(
        namespace,
        pipeline(
            "exclusive",
            [task("work", duration="10m")],
            workspace={"volumeClaimTemplate": template},
            maxConcurrentRuns=1,
        ),
        run("exclusive-1", "exclusive"),
    )
    wait_for("the first run to hold the slot", lambda: kube.pods(namespace, "exclusive-1"))
    kube.apply(namespace, run("exclusive-2", "exclusive"))

    def waiting_for_the_slot() -> dict[str, Any] | None:
        second = kube.run(namespace, "exclusive-2")
        reasons = {c["reason"] for c in (second.get("status") or {}).get("conditions") or ()}
        return second if "WaitingForConcurrency" in reasons else None

    waiting = wait_for("the second run to wait for the slot", waiting_for_the_slot)
    name = claim_name("exclusive-2", waiting["metadata"]["uid"])
    kube.apply(
        namespace,
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": template},
    )
    cancel = '{"spec":{"cancelled":true}}'
    kube.kubectl("patch", "pipelinerun", "exclusive-1", "-n", namespace, "--type=merge", "-p", cancel)
    obj = kube.wait_run(namespace, "exclusive-2")
    condition = next(c for c in obj["status"]["conditions"] if c["type"] == "Succeeded")
    assert (obj["status"]["phase"], condition["reason"]) == ("Failed", "InvalidWorkspace")
    assert name in condition["message"] and "does not control" in condition["message"]
    assert kube.pods(namespace, "exclusive-2") == []
    stranger = kube.core.read_namespaced_persistent_volume_claim(name, namespace)
    assert stranger.metadata.deletion_timestamp is None
