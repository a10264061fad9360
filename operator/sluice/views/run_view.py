"""A PipelineRun as a person reads it: its tasks in dependency levels, each
with a display state, attempt, duration and the reason it is where it is.

Read from the raw object (a dict from the API), tolerant of fields a newer
or older operator may or may not write: a view must never crash on a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluice.api import labels
from sluice.api.v1alpha1 import FINISHED_TASK_PHASES
from sluice.views.timefmt import parse_time

# A task's reason that means "its pod exists but cannot start" (the operator's
# stuck-pod reasons): shown as Waiting, not as plain Running.
_WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "ImageInspectError",
        "SignatureValidationFailed",
        "RegistryUnavailable",
        "CreateContainerConfigError",
        "CreateContainerError",
        "Unschedulable",
    }
)


@dataclass(frozen=True)
class AttemptView:
    """One task (or one instance of a fanned-out task) as last observed."""

    phase: str
    state: str
    attempts: int
    started: datetime | None
    finished: datetime | None
    reason: str | None
    message: str | None
    exit_code: int | None
    pod_name: str | None
    results: tuple[tuple[str, str], ...] = ()

    def duration(self, now: datetime) -> float | None:
        """Seconds from start to end (to ``now`` while it runs)."""
        if self.started is None:
            return None
        end = self.finished or (None if self.phase in FINISHED_TASK_PHASES else now)
        return None if end is None else (end - self.started).total_seconds()


@dataclass(frozen=True)
class InstanceView(AttemptView):
    index: int = 0
    values: str | None = None


@dataclass(frozen=True)
class TaskView(AttemptView):
    name: str = ""
    deps: tuple[str, ...] = ()
    is_finally: bool = False
    max_attempts: int = 1
    fanned_out: bool = False
    instances: tuple[InstanceView, ...] = ()


@dataclass(frozen=True)
class RunView:
    namespace: str
    name: str
    uid: str
    pipeline: str | None
    phase: str
    progress: str | None
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    reason: str | None
    message: str | None
    started_by: str | None
    params: tuple[tuple[str, str], ...] = ()
    tasks: tuple[TaskView, ...] = field(default_factory=tuple)

    @property
    def finished_for_good(self) -> bool:
        """Whether the run has ended (its phase final and its end recorded)."""
        return self.phase in {"Succeeded", "Failed", "Cancelled"} and self.finished is not None

    def duration(self, now: datetime) -> float | None:
        if self.started is None:
            return None
        return ((self.finished or now) - self.started).total_seconds()

    def task(self, name: str) -> TaskView | None:
        return next((task for task in self.tasks if task.name == name), None)


_WHY_STATES = frozenset({"Failed", "Skipped", "Waiting", "Retrying", "Cancelled"})


def why(view: AttemptView) -> str | None:
    """One line on why it is where it is: the reason and the message's last
    line (a log tail's last line is where the error is).
    """
    if view.state not in _WHY_STATES or not (view.reason or view.message):
        return None
    lines = [line.strip() for line in (view.message or "").splitlines() if line.strip()]
    detail = lines[-1] if lines else ""
    if view.exit_code is not None and f"exit code {view.exit_code}" not in detail:
        detail = f"exit code {view.exit_code}: {detail}" if detail else f"exit code {view.exit_code}"
    # "Error" is the container runtime's word for any non-zero exit: the exit code says more.
    if view.reason and view.reason not in detail and not (view.reason == "Error" and detail):
        return f"{view.reason}: {detail}" if detail else view.reason
    return detail or None


def display_state(phase: str, reason: str | None) -> str:
    """What to show: the phase, or Retrying/Waiting for a task in between."""
    if phase in {"Running", "Pending"}:
        if reason == "Retrying":
            return "Retrying"
        if reason in _WAITING_REASONS:
            return "Waiting"
    return phase


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _attempt_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    phase = _text(entry.get("phase")) or "Pending"
    reason = _text(entry.get("reason"))
    recorded_attempts = _int(entry.get("attempts"))
    started = parse_time(entry.get("startTime"))
    return {
        "phase": phase,
        "state": display_state(phase, reason),
        # The status counts attempts only once there is a retry; a task that
        # started has had one.
        "attempts": recorded_attempts or (1 if started or phase in {"Running", "Succeeded", "Failed"} else 0),
        "started": started,
        "finished": parse_time(entry.get("completionTime")),
        "reason": reason,
        "message": _text(entry.get("message")),
        "exit_code": _int(entry.get("exitCode")),
        "pod_name": _text(entry.get("podName")),
        "results": tuple(
            (str(r.get("name")), str(r.get("value")))
            for r in entry.get("results") or ()
            if isinstance(r, Mapping)
        ),
    }


def _spec_tasks(spec: Mapping[str, Any] | None) -> list[tuple[Mapping[str, Any], bool]]:
    if not isinstance(spec, Mapping):
        return []
    main = [(t, False) for t in spec.get("tasks") or () if isinstance(t, Mapping) and t.get("name")]
    final = [(t, True) for t in spec.get("finally") or () if isinstance(t, Mapping) and t.get("name")]
    return main + final


def _started_by(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> str | None:
    found = meta.get("labels") or {}
    if found.get(labels.BACKFILL):
        return f"backfill {found[labels.BACKFILL]}"
    if found.get(labels.TRIGGER):
        return f"trigger {found[labels.TRIGGER]}"
    if found.get(labels.ASSET_RUN):
        return "asset updates"
    if found.get(labels.SCHEDULED_BY):
        return "schedule"
    rerun = spec.get("rerunOf") or {}
    if isinstance(rerun, Mapping) and rerun.get("name"):
        return f"rerun of {rerun['name']}"
    return None


def _succeeded_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Succeeded":
            return condition
    return {}


def run_view(obj: Mapping[str, Any], pipeline_spec: Mapping[str, Any] | None = None) -> RunView:
    """Read a PipelineRun. ``pipeline_spec`` stands in for the run's frozen
    snapshot before the operator took it (a Pending run), so its tasks can
    still be drawn; the snapshot wins once there is one.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    snapshot = status.get("pipelineSpec") or spec.get("pipelineSpec") or pipeline_spec
    entries = {
        str(entry["name"]): entry
        for entry in status.get("tasks") or ()
        if isinstance(entry, Mapping) and entry.get("name")
    }
    tasks = []
    for task, is_finally in _spec_tasks(snapshot):
        name = str(task["name"])
        entry = entries.get(name, {})
        retries = task.get("retries") or {}
        instances = tuple(
            InstanceView(
                **_attempt_fields(instance),
                index=_int(instance.get("index")) or 0,
                values=_text(instance.get("values")),
            )
            for instance in entry.get("instances") or ()
            if isinstance(instance, Mapping)
        )
        tasks.append(
            TaskView(
                **_attempt_fields(entry),
                name=name,
                deps=tuple(str(d) for d in task.get("dependsOn") or ()),
                is_finally=is_finally,
                max_attempts=(_int(retries.get("limit")) or 0) + 1 if isinstance(retries, Mapping) else 1,
                fanned_out=bool(task.get("matrix")),
                instances=instances,
            )
        )
    condition = _succeeded_condition(status)
    pipeline = _text(status.get("pipelineName")) or _text((spec.get("pipelineRef") or {}).get("name"))
    return RunView(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        pipeline=pipeline,
        phase=_text(status.get("phase")) or "Pending",
        progress=_text(status.get("progress")),
        created=parse_time(meta.get("creationTimestamp")),
        started=parse_time(status.get("startTime")),
        finished=parse_time(status.get("completionTime")),
        reason=_text(condition.get("reason")),
        message=_text(condition.get("message")),
        started_by=_started_by(meta, spec),
        params=tuple(
            (str(p.get("name")), str(p.get("value")))
            for p in status.get("params") or spec.get("params") or ()
            if isinstance(p, Mapping)
        ),
        tasks=tuple(tasks),
    )


def levels(tasks: Sequence[TaskView]) -> list[list[TaskView]]:
    """Main tasks grouped by depth (a task sits one level below its deepest
    dependency), in declaration order within a level; finally tasks are left
    out (they run after all of these). A cycle or an unknown dependency (a
    run that failed for it) puts the tasks it holds in one last level rather
    than losing them.
    """
    main = [task for task in tasks if not task.is_finally]
    known = {task.name for task in main}
    deps = {task.name: {d for d in task.deps if d in known} for task in main}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, upstream in deps.items():
        for dep in upstream:
            dependents[dep].append(name)
    waiting = {name: len(upstream) for name, upstream in deps.items()}
    depth: dict[str, int] = {}
    ready = [name for name, count in waiting.items() if count == 0]
    for name in ready:
        depth[name] = 0
    while ready:  # Kahn's algorithm: linear in tasks and edges
        name = ready.pop()
        for child in dependents[name]:
            depth[child] = max(depth.get(child, 0), depth[name] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    remaining = [task for task in main if waiting[task.name] > 0]
    grouped: dict[int, list[TaskView]] = {}
    for task in main:
        if waiting[task.name] == 0:
            grouped.setdefault(depth[task.name], []).append(task)
    result = [grouped[level] for level in sorted(grouped)]
    if remaining:
        result.append(remaining)
    return result
