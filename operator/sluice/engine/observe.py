"""Read a run's tasks off their pods (pure, no I/O).

Each task attempt is one pod, so the pod is the whole truth about it: its
phase, its container's exit code, and its termination message (which, with
FallbackToLogsOnError, holds a failed container's last log lines, and a
succeeded container's results).

What a pod's phase does not say is read from around it:

* a pod past its ``activeDeadlineSeconds`` failed with Timeout even while it
  still runs (a kubelet enforces the deadline; a lost node cannot, so the
  operator does, and stops the pod);
* a pod being deleted is a lost attempt once its grace period is over
  (node loss leaves such pods behind forever), with the reason the API
  server gave (DisruptionTarget: preemption, eviction, node loss);
* a pod this operator created but has not seen in a watch event counts as
  running (so a pass in that gap neither creates it again nor calls its task
  not started), and a pod the API server refused for good fails its task.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sluice.api import labels
from sluice.engine.clock import parse_time, rfc3339
from sluice.engine.matrix import split_key, unit_key

MESSAGE_LIMIT = 1024
TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})

# The DisruptionTarget condition's reason -> the task's reason for a lost attempt.
DISRUPTION_REASONS = {
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "EvictionByEvictionAPI": "Evicted",
    "TerminationByKubelet": "Evicted",
    "DeletionByTaintManager": "NodeLost",
    "DeletionByPodGC": "NodeLost",
}
# A failed pod's own status.reason -> the task's reason.
POD_FAILURE_REASONS = {
    "DeadlineExceeded": "Timeout",
    "Evicted": "Evicted",
    "Preempting": "Preempted",
    "NodeLost": "NodeLost",
    "Shutdown": "NodeShutdown",
    "Terminated": "NodeShutdown",
    "NodeShutdown": "NodeShutdown",
}
# What a container stopped by its pod's deletion exits with (none, SIGKILL, SIGTERM).
KILLED_EXIT_CODES = frozenset({None, 137, 143})
# Why a pod can be stuck before its task's container runs, shown on the task
# while it waits. An image or a config the kubelet cannot get fails the
# attempt past the pending deadline (as Tekton fails on image pulls); a pod
# no node fits (a nodeSelector, resources, an unbound claim: the scheduler's
# message says) only waits, as it may for an autoscaler or a busy cluster,
# until the task's or the run's timeout.
IMAGE_PULL = "ImagePullBackOff"
# The kubelet alternates these two every back-off: one reason to the task.
SAME_AS = {"ErrImagePull": IMAGE_PULL, "RegistryUnavailable": IMAGE_PULL}
FAILING_STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "RegistryUnavailable",
        "InvalidImageName",
        "ErrImageNeverPull",
        "ImageInspectError",
        "SignatureValidationFailed",
        "CreateContainerConfigError",
    }
)
UNSCHEDULABLE = "Unschedulable"
STUCK_REASONS = FAILING_STUCK_REASONS | {UNSCHEDULABLE}


@dataclass(frozen=True)
class TaskObservation:
    """One attempt of one task, as its pod shows it."""

    pod_name: str  # "" when no pod was ever created (refused, or failed before starting)
    phase: str  # Running, Succeeded or Failed
    start_time: str | None = None
    completion_time: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    attempt: int = 0
    # A succeeded container's whole termination message (where results live).
    output: str | None = None
    results: tuple[tuple[str, str], ...] | None = None
    # The pod still runs although the attempt is over (past its deadline): stop it.
    stop_pod: bool = False
    # When a running attempt must be looked at again though no event may come:
    # its deadline, or the end of its deletion's grace period.
    look_again_at: str | None = None


def truncate(text: str | None, limit: int = MESSAGE_LIMIT) -> str | None:
    """At most ``limit`` bytes of UTF-8 (what etcd counts, not characters),
    keeping the tail, where errors are. Idempotent.
    """
    if not text:
        return None
    text = text.strip()
    raw = text.encode()
    if len(raw) <= limit:
        return text
    # Cutting bytes may split a character: its leftover bytes are dropped.
    return "..." + raw[-(limit - 3) :].decode(errors="ignore")


def _terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or ():
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated  # type: ignore[no-any-return]
    return None


def _disruption(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions") or ():
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def waiting_reason(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when the pod is stuck before its container runs;
    also, for a pod being deleted, the one it was stuck with before (kept by
    the pod cache: the kubelet replaces it with a terminated state).
    """
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            reason = waiting["reason"]
            return SAME_AS.get(reason, reason), waiting.get("message") or reason
    for condition in status.get("conditions") or ():
        unschedulable = condition.get("status") == "False" and condition.get("reason") == UNSCHEDULABLE
        if condition.get("type") == "PodScheduled" and unschedulable:
            return UNSCHEDULABLE, condition.get("message") or "no node fits the pod"
    stuck = status.get("stuckBefore")
    if stuck and pod["metadata"].get("deletionTimestamp"):
        return str(stuck["reason"]), str(stuck.get("message") or stuck["reason"])
    return None


def _give_up(
    pod: Mapping[str, Any], stuck: tuple[str, str] | None, pending_deadline: float, deadline: str | None
) -> str | None:
    """When a stuck attempt fails: ``pending_deadline`` after the pod was
    scheduled (an image is pulled only then; a pod that waited long for a
    node has its full time to pull), for the reasons that fail at all; never
    after the attempt's own timeout or its pod's deletion, which come first.
    """
    if stuck is None or stuck[0] not in FAILING_STUCK_REASONS or pending_deadline <= 0:
        return None
    meta, status = pod["metadata"], pod.get("status") or {}
    since = status.get("scheduledAt") or meta.get("creationTimestamp")
    if not since:
        return None
    give_up = parse_time(since) + timedelta(seconds=pending_deadline)
    deleted = meta.get("deletionTimestamp")
    if (deadline and parse_time(deadline) <= give_up) or (deleted and parse_time(deleted) < give_up):
        return None
    return rfc3339(give_up)


def _deadline(pod: Mapping[str, Any]) -> str | None:
    """When the attempt's activeDeadlineSeconds runs out: counted from the
    pod's start, or from its creation while it has not started (a pod that
    never schedules must time out too, as a Job's deadline did).
    """
    seconds = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = (pod.get("status") or {}).get("startTime") or pod["metadata"].get("creationTimestamp")
    if not seconds or not started:
        return None
    return rfc3339(parse_time(started) + timedelta(seconds=int(seconds)))


def _lost(pod: Mapping[str, Any], at: str) -> tuple[str, str]:
    """(reason, message) for an attempt whose pod was deleted before it ended."""
    disruption = _disruption(pod)
    if disruption is not None:
        # The kubelet gives one condition reason for node-pressure eviction and
        # graceful node shutdown; the pod's own reason tells them apart.
        pod_reason = POD_FAILURE_REASONS.get((pod.get("status") or {}).get("reason") or "")
        reason = pod_reason or DISRUPTION_REASONS.get(disruption.get("reason") or "", "Disrupted")
        detail = disruption.get("message") or disruption.get("reason") or "disrupted"
        return reason, f"the task's pod was stopped by the cluster: {detail}"
    return "PodDeleted", f"the task's pod was deleted at {at} before it finished"


def observe_pod(
    pod: Mapping[str, Any], now: str, attempt: int = 0, pending_deadline: float = 0
) -> TaskObservation:
    """One attempt's observation from its pod, at time ``now``. A pod stuck
    before its container runs (``waiting_reason``) shows why; stuck on an
    image or a config past ``pending_deadline`` seconds (0: never; see
    ``_give_up``), the attempt fails with that reason, and retries apply.
    """
    meta = pod["metadata"]
    status = pod.get("status") or {}
    name = meta["name"]
    phase = status.get("phase")
    started = status.get("startTime")
    terminated = _terminated_state(pod) or {}
    exit_code = terminated.get("exitCode")
    finished = terminated.get("finishedAt")
    deadline = _deadline(pod)
    deleted = meta.get("deletionTimestamp")

    if phase == "Succeeded":
        output = terminated.get("message")
        return TaskObservation(
            name, "Succeeded", started, finished or now, exit_code, attempt=attempt, output=output
        )

    timed_out = deadline is not None and parse_time(now) >= parse_time(deadline)
    stuck = waiting_reason(pod)
    give_up = _give_up(pod, stuck, pending_deadline, deadline)
    if stuck is not None and give_up is not None and parse_time(now) >= parse_time(give_up):
        # Also once its pod is being deleted (by this verdict): the
        # attempt keeps the reason it failed with.
        reason, message = stuck
        waited = f"it could not start within the pending deadline of {pending_deadline:g}s"
        return TaskObservation(
            name,
            "Failed",
            started,
            give_up,
            None,
            reason,
            truncate(f"{message} ({waited})"),
            attempt,
            stop_pod=not deleted,
        )
    if phase == "Failed" or timed_out or (deleted and parse_time(now) >= parse_time(deleted)):
        return _failed(pod, now, attempt, deadline, timed_out and phase != "Failed")
    if phase == "Running":
        stuck = None  # its container runs: whatever held it up is over
    wake = min((t for t in (deadline, deleted, give_up) if t), key=parse_time, default=None)
    return TaskObservation(
        name,
        "Running",
        started,
        attempt=attempt,
        reason=stuck[0] if stuck else None,
        message=truncate(stuck[1]) if stuck else None,
        look_again_at=wake,
    )


def _failed(
    pod: Mapping[str, Any], now: str, attempt: int, deadline: str | None, still_running: bool
) -> TaskObservation:
    """A failed attempt, with the most specific reason the pod gives."""
    meta = pod["metadata"]
    status = pod.get("status") or {}
    terminated = _terminated_state(pod) or {}
    exit_code = terminated.get("exitCode")
    finished = terminated.get("finishedAt") or meta.get("deletionTimestamp") or now
    pod_reason = status.get("reason") or ""
    seconds = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    message: str | None
    if (
        still_running
        or pod_reason == "DeadlineExceeded"
        or (deadline is not None and meta.get("deletionTimestamp") and finished >= deadline)
    ):
        reason, message = "Timeout", f"the task exceeded its timeout of {seconds}s"
        finished = min(finished, deadline) if deadline else finished
        exit_code = None
    elif _disruption(pod) is not None or (meta.get("deletionTimestamp") and exit_code in KILLED_EXIT_CODES):
        reason, message = _lost(pod, meta.get("deletionTimestamp") or finished)
        exit_code = None
    elif pod_reason:
        reason = POD_FAILURE_REASONS.get(pod_reason, pod_reason)
        message = status.get("message") or pod_reason
    else:
        reason = terminated.get("reason") or "Failed"
        message = truncate(terminated.get("message")) or "the task's container failed"
        if exit_code is not None and exit_code != 0:
            message = f"exit code {exit_code}: {message}"
    return TaskObservation(
        meta["name"],
        "Failed",
        status.get("startTime"),
        finished,
        exit_code,
        reason,
        truncate(message),
        attempt=attempt,
        stop_pod=still_running and not meta.get("deletionTimestamp"),
    )


@dataclass(frozen=True)
class CreatedPod:
    """A pod this operator created that no watch event has shown yet."""

    name: str
    task: str
    attempt: int


@dataclass(frozen=True)
class RefusedCreate:
    """An object that could not be created and that retrying cannot create:
    the API server refused it (400/422), or its name is held by an object
    this run does not control.
    """

    name: str
    message: str
    at: str
    task: str | None = None  # None for the run's workspace claim
    attempt: int = 0
    taken: bool = False  # the name was taken, not the object refused


def refused_pod(refusal: RefusedCreate) -> TaskObservation:
    if refusal.taken:
        reason = "PodNameTaken"
        message = (
            f"a pod named {refusal.name} already exists and this run does not control it "
            "(someone else created it), so the task was not started: delete that pod and rerun"
        )
    else:
        reason = "PodRejected"
        message = f"the API server rejected the task's pod: {refusal.message}"
    return TaskObservation(
        "",
        "Failed",
        reason=reason,
        message=truncate(message),
        completion_time=refusal.at,
        attempt=refusal.attempt,
    )


def pod_attempt(pod: Mapping[str, Any]) -> tuple[str | None, int]:
    """(unit, attempt) from a task pod's labels: the unit is its task, or
    ``task[index]`` for an instance of a fanned-out task.
    """
    pod_labels = pod["metadata"].get("labels") or {}
    try:
        attempt = int(pod_labels.get(labels.ATTEMPT) or 0)
    except ValueError:
        attempt = 0
    task = pod_labels.get(labels.TASK)
    instance = pod_labels.get(labels.INSTANCE)
    if task is not None and instance is not None and instance.isdigit():
        return unit_key(task, int(instance)), attempt
    return task, attempt


def observe_tasks(
    tasks: Collection[str],
    pods: Iterable[Mapping[str, Any]],
    now: str,
    created: Iterable[CreatedPod] = (),
    refused: Iterable[RefusedCreate] = (),
    pending_deadline: float = 0,
) -> dict[str, TaskObservation]:
    """Each task's (and each instance's) latest attempt, keyed by unit: from
    its newest pod, unless a newer attempt was just created or refused.
    ``tasks`` are the task names of the run's spec.
    """
    latest: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for pod in pods:
        name, attempt = pod_attempt(pod)
        if name is None or split_key(name)[0] not in tasks:
            continue
        held = latest.get(name)
        # Two pods of one attempt only come from a Job of an older Sluice:
        # the newest one speaks for it.
        if held is None or (attempt, _created(pod)) > (held[0], _created(held[1])):
            latest[name] = (attempt, pod)
    observed = {
        task: observe_pod(pod, now, attempt, pending_deadline) for task, (attempt, pod) in latest.items()
    }
    for new in created:
        if split_key(new.task)[0] in tasks and (
            new.task not in observed or observed[new.task].attempt < new.attempt
        ):
            observed[new.task] = TaskObservation(new.name, "Running", attempt=new.attempt)
    for refusal in refused:
        task = refusal.task
        if (
            task is not None
            and split_key(task)[0] in tasks
            and (task not in observed or observed[task].attempt <= refusal.attempt)
        ):
            observed[task] = refused_pod(refusal)
    return observed


def _created(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"].get("creationTimestamp") or "")


@dataclass(frozen=True)
class TrackedPod:
    """A task pod that still carries the tracking finalizer."""

    name: str
    task: str
    attempt: int
    ended: bool  # terminal, or being deleted: nothing more will happen to it
    deleting: bool = False  # someone deleted it: only the finalizer keeps it


def tracked_pod(pod: Mapping[str, Any], finalizer: str) -> TrackedPod | None:
    """The pod as the finalizer bookkeeping sees it, if it holds ``finalizer``."""
    meta = pod["metadata"]
    if finalizer not in (meta.get("finalizers") or ()):
        return None
    task, attempt = pod_attempt(pod)
    phase = (pod.get("status") or {}).get("phase")
    deleting = bool(meta.get("deletionTimestamp"))
    return TrackedPod(meta["name"], task or "", attempt, phase in TERMINAL_POD_PHASES or deleting, deleting)
