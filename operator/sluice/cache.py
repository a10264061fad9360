"""In-memory view of the task pods that runs own, fed by watch events.

Why a cache: the reconciler must know every task's pod on every pass;
listing them from the API each time would cost a request per wake-up. Pods
are trimmed to what the reconciler reads (no managedFields, no pod spec
beyond the deadline), so memory stays proportional to the number of tasks,
not to object size.

"Expectations" cover the gap between creating a pod and its watch event
arriving: a pod we just created counts as existing, so a reconcile in that
gap neither re-creates it nor reports the task as not started. "Refusals"
remember what the API server refused to create for good (a 422); they are
memory, not truth: a restarted operator tries once more and is refused again.

Entries live as long as the pods do: a run's entry goes when its last pod's
DELETED event arrives, so a deleted run's pods can still have their
finalizers released, and a cluster with many finished runs does not grow the
cache beyond the pods that actually exist.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sluice.api import labels
from sluice.api.meta import resource_version
from sluice.api.v1alpha1 import GROUP
from sluice.engine.observe import (
    SAME_AS,
    STUCK_REASONS,
    UNSCHEDULABLE,
    CreatedPod,
    RefusedCreate,
    waiting_reason,
)

# Long enough for a watch to reconnect and catch up; a pod created and never
# seen after that is treated as lost (see run_plan.lost_attempts).
EXPECTATION_TTL = 300.0

# The pod conditions a pass reads; the others (Ready, Initialized, ...) are dropped.
KEPT_CONDITIONS = frozenset({"DisruptionTarget"})


# The labels and container-state fields a pass reads; the rest is dropped, so
# 10,000s of finished task pods stay a few hundred bytes each.
KEPT_LABELS = (labels.RUN, labels.RUN_UID, labels.TASK, labels.ATTEMPT, labels.INSTANCE)
KEPT_TERMINATED = ("exitCode", "reason", "message", "startedAt", "finishedAt")


def _state(state: dict[str, Any]) -> dict[str, Any]:
    terminated = state.get("terminated")
    if terminated:
        return {"terminated": {k: terminated[k] for k in KEPT_TERMINATED if k in terminated}}
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in STUCK_REASONS:
        # Stuck before it runs (an image, a Secret): the task shows why.
        return {"waiting": {k: waiting[k] for k in ("reason", "message") if k in waiting}}
    return {"running": {}} if "running" in state else {}


def _kept_condition(condition: dict[str, Any]) -> bool:
    """A disruption, or the scheduler saying no node fits (only while it
    says so: every pod's PodScheduled=True would cost each one a pass, and
    a pod held by a scheduling gate, e.g. Kueue's, is not stuck).
    """
    if condition.get("type") == "PodScheduled":
        return condition.get("status") == "False" and condition.get("reason") == UNSCHEDULABLE
    return condition.get("type") in KEPT_CONDITIONS


def _scheduled_at(status: dict[str, Any]) -> str | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return condition.get("lastTransitionTime")  # type: ignore[no-any-return]
    return None


def controlling_run(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(UID, name) of the Sluice run that controls the object, from its
    ownerReference: labels alone prove nothing (anyone who may create pods
    may copy them), so a pod no run controls is not a task attempt. The
    reference must be to Sluice's own kind and block the owner's deletion,
    as the operator's do: where the API server enforces owner-reference
    permissions, that takes `update` on the finalizers of the run it
    *names*, so a pass also checks the name, not only the UID.
    """
    for owner in obj["metadata"].get("ownerReferences") or ():
        ours = owner.get("kind") == "PipelineRun" and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/")
        if ours and owner.get("controller") and owner.get("blockOwnerDeletion"):
            return str(owner.get("uid")), str(owner.get("name"))
    return None


def trim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """Only what observe_pod and the finalizer bookkeeping read."""
    meta = pod["metadata"]
    status = pod.get("status") or {}
    trimmed_status: dict[str, Any] = {
        "phase": status.get("phase"),
        "startTime": status.get("startTime"),
        "containerStatuses": [
            {"name": c.get("name"), "state": _state(c.get("state") or {})}
            for c in status.get("containerStatuses") or ()
        ],
    }
    scheduled = _scheduled_at(status)
    if scheduled:
        # When a stuck image pull starts counting (not a change that needs a pass).
        trimmed_status["scheduledAt"] = scheduled
    for key in ("reason", "message"):
        if status.get(key):
            trimmed_status[key] = status[key]
    conditions = [c for c in status.get("conditions") or () if _kept_condition(c)]
    if conditions:
        trimmed_status["conditions"] = conditions
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return {
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k in KEPT_LABELS},
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
            "finalizers": meta.get("finalizers") or [],
            "ownerName": (controlling_run(pod) or ("", ""))[1],
        },
        "spec": {"activeDeadlineSeconds": deadline} if deadline else {},
        "status": trimmed_status,
    }


def _significant(pod: dict[str, Any]) -> tuple[Any, ...]:
    """What a pass acts on: an end (terminal phase, exit state, a reason), a
    disruption, a deletion. A pod merely starting needs no pass: its task is
    already Running since its creation (startTime is when Sluice created the
    attempt), and its deadline is already awaited; nor do changes elsewhere
    (our own finalizer removal, a resourceVersion bump).
    """
    status = pod["status"]
    phase = status["phase"]
    return (
        phase if phase in ("Succeeded", "Failed") else None,
        status.get("reason"),
        # Not their messages: the scheduler's changes with the node count.
        tuple((c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or ())
        or None,
        tuple(c["state"]["terminated"] for c in status["containerStatuses"] if c["state"].get("terminated")),
        pod["metadata"]["deletionTimestamp"],
        # One reason for ErrImagePull and ImagePullBackOff, which alternate.
        tuple(
            SAME_AS.get(c["state"]["waiting"]["reason"], c["state"]["waiting"]["reason"])
            for c in status["containerStatuses"]
            if c["state"].get("waiting")
        ),
    )


# A pod nothing has ended, disrupted or deleted: what its creator planned.
UNEVENTFUL = (None, None, None, (), None, ())


class ChildCache:
    """Task pods grouped by the UID of the run that owns them."""

    def __init__(self) -> None:
        # run uid -> pod name -> pod
        self.pods: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        # (namespace, run label value) -> run uids seen with it
        self.uids: dict[tuple[str, str], set[str]] = defaultdict(set)
        # run uid -> pod name -> (task, attempt, monotonic time of the create)
        self.expected: dict[str, dict[str, tuple[str, int, float]]] = defaultdict(dict)
        # run uid -> object name -> what the API server refused to create
        self.refused: dict[str, dict[str, RefusedCreate]] = defaultdict(dict)

    @staticmethod
    def run_uid(obj: dict[str, Any]) -> str | None:
        """The UID of the run that controls the object (see controlling_run)."""
        owner = controlling_run(obj)
        return owner[0] if owner else None

    @staticmethod
    def controlled_by(obj: dict[str, Any], uid: str, name: str) -> bool:
        """Whether the run ``name`` with ``uid`` controls the object."""
        return controlling_run(obj) == (uid, name)

    @staticmethod
    def _run_key(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj["metadata"]
        return (meta.get("namespace") or "", (meta.get("labels") or {}).get(labels.RUN) or "")

    def upsert_pod(self, pod: dict[str, Any]) -> bool:
        """Store the pod; True when anything a pass reads changed."""
        uid = self.run_uid(pod)
        if uid is None:
            return False
        trimmed = trim_pod(pod)
        name = trimmed["metadata"]["name"]
        store = self.pods[uid]
        held = store.get(name)
        if held is not None and resource_version(held) > resource_version(trimmed):
            return False  # an older version (watch and list can interleave)
        if held is not None and trimmed["metadata"]["deletionTimestamp"]:
            # A stuck pod being deleted (past its pending deadline) loses its
            # waiting state to the kubelet: keep what it was stuck with, so
            # its attempt keeps the reason it failed with.
            before = waiting_reason(held)
            if before is not None and waiting_reason(trimmed) is None:
                trimmed["status"]["stuckBefore"] = {"reason": before[0], "message": before[1]}
        store[name] = trimmed
        self.uids[self._run_key(trimmed)].add(uid)
        expected = self.expected.get(uid, {}).pop(name, None)
        if held is None:
            # Our own create, seen before anything happened to the pod: the
            # pass that created it planned exactly this (and its deadline).
            return expected is None or _significant(trimmed) != UNEVENTFUL
        return _significant(held) != _significant(trimmed)

    def delete_pod(self, pod: dict[str, Any]) -> None:
        uid = self.run_uid(pod)
        store = self.pods.get(uid or "")
        if uid is None or store is None:
            return
        store.pop(pod["metadata"]["name"], None)
        self.expected.get(uid, {}).pop(pod["metadata"]["name"], None)
        if not store:
            del self.pods[uid]
            key = self._run_key(pod)
            self.uids[key].discard(uid)
            if not self.uids[key]:
                del self.uids[key]

    def expect(self, uid: str, pod_name: str, task: str, attempt: int = 0) -> None:
        """Call before the create, so a watch event that beats the create's
        answer still clears it; a pod already held needs no expectation.
        """
        if pod_name not in self.pods.get(uid, {}):
            self.expected[uid][pod_name] = (task, attempt, time.monotonic())

    def unexpect(self, uid: str, pod_name: str) -> None:
        """The create failed: the pod will not appear."""
        self.expected.get(uid, {}).pop(pod_name, None)

    def created_pods(self, uid: str) -> list[CreatedPod]:
        """Pods created but not yet seen in a watch event."""
        now = time.monotonic()
        held = self.pods.get(uid, {})
        return [
            CreatedPod(name, task, attempt)
            for name, (task, attempt, at) in self.expected.get(uid, {}).items()
            if now - at < EXPECTATION_TTL and name not in held
        ]

    def refuse(self, uid: str, refusal: RefusedCreate) -> None:
        self.refused[uid][refusal.name] = refusal

    def refusals(self, uid: str) -> list[RefusedCreate]:
        return list(self.refused.get(uid, {}).values())

    def pods_of(self, uid: str, run_name: str | None = None) -> list[dict[str, Any]]:
        """The pods the run with ``uid`` controls; with ``run_name``, only
        those whose reference also names it (see controlling_run).
        """
        pods = self.pods.get(uid, {}).values()
        if run_name is None:
            return list(pods)
        return [pod for pod in pods if pod["metadata"].get("ownerName") == run_name]

    def run_uids(self, namespace: str, run_label: str) -> set[str]:
        """Every run UID whose pods are held under this namespace and run label."""
        return set(self.uids.get((namespace, run_label), ()))

    def forget_run(self, uid: str) -> None:
        """Drop what only a live run needs; its pods stay until they are gone."""
        self.expected.pop(uid, None)
        self.refused.pop(uid, None)

    def __len__(self) -> int:
        return sum(len(pods) for pods in self.pods.values())
