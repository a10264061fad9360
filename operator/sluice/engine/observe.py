"""Read a run's tasks off their Jobs and pods (pure, no I/O).

The Job is the source of truth for success and failure; the pod adds what a
user needs to debug (pod name, exit code, the termination message, which with
FallbackToLogsOnError holds the last log lines of a failed container).

Two things the cluster cannot show yet are observations too: a Job this
operator created but has not seen in a watch event (so a pass in that gap
neither creates it again nor calls its task not started), and a Job the API
server refused for good (so the next pass fails the task instead of trying
again).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sluice.api import labels

MESSAGE_LIMIT = 1024

SUCCESS_CONDITIONS = ("Complete", "SuccessCriteriaMet")
FAILURE_CONDITIONS = ("Failed", "FailureTarget")


@dataclass(frozen=True)
class TaskObservation:
    job_name: str
    phase: str  # Running, Succeeded or Failed
    pod_name: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    attempt: int = 0
    # A succeeded container's whole termination message (where results live).
    output: str | None = None
    results: tuple[tuple[str, str], ...] | None = None


def _true_condition(job: Mapping[str, Any], types: Iterable[str]) -> Mapping[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or ():
        if condition.get("type") in types and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def _latest_pod(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    ordered = sorted(
        pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
    )
    return ordered[-1] if ordered else None


def _terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or ():
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated  # type: ignore[no-any-return]
    return None


def truncate(text: str | None, limit: int = MESSAGE_LIMIT) -> str | None:
    if not text:
        return None
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def observe_task(
    job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], attempt: int = 0
) -> TaskObservation:
    """One task's observation from one attempt's Job and that Job's pods."""
    return replace(_observe(job, pods), attempt=attempt)


def _observe(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> TaskObservation:
    name = job["metadata"]["name"]
    status = job.get("status") or {}
    pod = _latest_pod(pods)
    pod_name = pod["metadata"]["name"] if pod else None
    terminated = _terminated_state(pod) if pod else None
    exit_code = terminated.get("exitCode") if terminated else None
    pod_message = truncate(terminated.get("message")) if terminated else None

    succeeded = _true_condition(job, SUCCESS_CONDITIONS)
    # A task's Job runs one pod (completions 1, no retries), so its pod
    # succeeding decides the Job. Acting on the pod saves the Job controller's
    # status batching (about a second) on every edge of the DAG.
    pod_succeeded = pod is not None and (pod.get("status") or {}).get("phase") == "Succeeded"
    if succeeded is not None or (status.get("succeeded") or 0) > 0 or pod_succeeded:
        finished = (
            status.get("completionTime")
            or (succeeded or {}).get("lastTransitionTime")
            or (terminated or {}).get("finishedAt")
        )
        output = (terminated or {}).get("message")
        return TaskObservation(
            name, "Succeeded", pod_name, status.get("startTime"), finished, exit_code, output=output
        )

    failed = _true_condition(job, FAILURE_CONDITIONS)
    if failed is not None:
        reason = (terminated or {}).get("reason") or failed.get("reason") or "Failed"
        message = pod_message or failed.get("message") or "the task's Job failed"
        deadline = job.get("spec", {}).get("activeDeadlineSeconds")
        if failed.get("reason") == "DeadlineExceeded":
            reason = "Timeout"
            message = f"the task exceeded its timeout of {deadline}s" if deadline else "the task timed out"
        if exit_code is not None and exit_code != 0:
            message = f"exit code {exit_code}: {message}"
        return TaskObservation(
            name,
            "Failed",
            pod_name,
            status.get("startTime"),
            failed.get("lastTransitionTime"),
            exit_code,
            reason,
            truncate(message),
        )
    return TaskObservation(name, "Running", pod_name, status.get("startTime"))


@dataclass(frozen=True)
class CreatedJob:
    """A Job this operator created that no watch event has shown yet."""

    name: str
    task: str
    attempt: int


@dataclass(frozen=True)
class RefusedCreate:
    """An object the API server refused to create (400/422): retrying cannot help."""

    name: str
    message: str
    at: str
    task: str | None = None  # None for the run's workspace claim
    attempt: int = 0


def refused_job(refusal: RefusedCreate) -> TaskObservation:
    return TaskObservation(
        refusal.name,
        "Failed",
        reason="JobRejected",
        message=truncate(f"the API server rejected the task's Job: {refusal.message}"),
        completion_time=refusal.at,
        attempt=refusal.attempt,
    )


def observe_tasks(
    tasks: Collection[str],
    jobs: Iterable[Mapping[str, Any]],
    pods_by_job: Mapping[str, Mapping[str, Mapping[str, Any]]],
    created: Iterable[CreatedJob] = (),
    refused: Iterable[RefusedCreate] = (),
) -> dict[str, TaskObservation]:
    """Each task's latest attempt: from its newest Job (and that Job's pods),
    unless a newer attempt was just created or refused.
    """
    latest: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for job in jobs:
        job_labels = job["metadata"].get("labels") or {}
        name: str | None = job_labels.get(labels.TASK)
        attempt = int(job_labels.get(labels.ATTEMPT) or 0)
        if name is not None and name in tasks and (name not in latest or attempt > latest[name][0]):
            latest[name] = (attempt, job)
    observed = {
        task: observe_task(job, (pods_by_job.get(job["metadata"]["name"]) or {}).values(), attempt)
        for task, (attempt, job) in latest.items()
    }
    for new in created:
        if new.task in tasks and (new.task not in observed or observed[new.task].attempt < new.attempt):
            observed[new.task] = TaskObservation(new.name, "Running", attempt=new.attempt)
    for refusal in refused:
        task = refusal.task
        if (
            task is not None
            and task in tasks
            and (task not in observed or observed[task].attempt <= refusal.attempt)
        ):
            observed[task] = refused_job(refusal)
    return observed
