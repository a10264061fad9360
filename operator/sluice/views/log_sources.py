"""Which logs `kubectl sluice logs` shows: the pods of a run's tasks, found
by their labels instead of by name, the newest attempt of each unless one is
asked for, and for a pod that is gone what the run's status still keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.api import labels
from sluice.views.run_view import AttemptView, RunView, TaskView, levels


@dataclass(frozen=True)
class TaskPod:
    """One task pod as its labels and status describe it."""

    name: str
    task: str
    instance: int | None
    attempt: int  # 1-based, as people count
    phase: str
    # Whether its container has started (before that there is no log).
    started: bool


@dataclass(frozen=True)
class LogSource:
    """One log to show: ``pod`` when it still exists, else ``note`` says why not."""

    label: str
    pod: TaskPod | None
    note: str | None = None
    # The log tail the run's status keeps, shown when the pod is gone.
    kept: str | None = None


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def task_pods(pods: Iterable[Mapping[str, Any]]) -> list[TaskPod]:
    """The task pods among ``pods`` (anything without Sluice's task labels is ignored)."""
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        own = meta.get("labels") or {}
        attempt = _number(own.get(labels.ATTEMPT))
        if not own.get(labels.TASK) or attempt is None:
            continue
        status = pod.get("status") or {}
        containers = status.get("containerStatuses") or ()
        started = any(
            (c.get("state") or {}).get("running") or (c.get("state") or {}).get("terminated")
            for c in containers
        )
        found.append(
            TaskPod(
                name=str(meta.get("name")),
                task=str(own[labels.TASK]),
                instance=_number(own.get(labels.INSTANCE)),
                attempt=attempt + 1,
                phase=str(status.get("phase") or "Pending"),
                started=bool(started),
            )
        )
    return found


def _label(task: str, instance: int | None, attempt: int, many_attempts: bool) -> str:
    name = task if instance is None else f"{task}[{instance}]"
    return f"{name} #{attempt}" if many_attempts else name


def _unit(run: RunView, task: str, instance: int | None) -> AttemptView | None:
    """The status entry of a task, or of one instance of a fanned-out task."""
    view: AttemptView | None = run.task(task)
    if isinstance(view, TaskView) and instance is not None:
        view = next((i for i in view.instances if i.index == instance), None)
    return view


def _gone_note(run: RunView, task: str, instance: int | None) -> tuple[str, str | None]:
    """Why there is no pod to read, and the log tail the status keeps, if any."""
    label = task if instance is None else f"{task}[{instance}]"
    view = _unit(run, task, instance)
    if view is not None and view.reason == "Reused":
        source = (run.started_by or "the run it reruns").removeprefix("rerun of ")
        return f"{label}: reused from {source}; its log is that run's", None
    if view is not None and view.state == "Skipped":
        return f"{label}: skipped, so it has no log ({view.reason or 'not run'})", None
    if view is None or view.pod_name is None:
        return f"{label}: no pod yet, the task has not started", None
    gone = f"{label}: pod {view.pod_name} is gone (deleted by hand, or with its run)"
    if view.message:
        return f"{gone}; the run's status keeps its last lines:", view.message
    return f"{gone}; the run's status keeps no log for it (only a failed task keeps its tail)", None


def _units(
    run: RunView, name: str, pods: Sequence[TaskPod], instance: int | None, asked: bool
) -> list[int | None]:
    """The task itself ([None]), or the indexes of its instances when it fans out."""
    view = run.task(name)
    fanned = bool(view is not None and (view.fanned_out or view.instances)) or any(
        p.task == name and p.instance is not None for p in pods
    )
    if not fanned:
        if instance is not None and asked:
            raise LookupError(f'task "{name}" is not fanned out: it has no instance {instance}')
        return [] if instance is not None else [None]
    indexes: set[int] = {i.index for i in view.instances} if view is not None else set()
    indexes |= {p.instance for p in pods if p.task == name and p.instance is not None}
    chosen: list[int | None] = [i for i in sorted(indexes) if instance is None or i == instance]
    if instance is not None and not chosen and asked:
        raise LookupError(f'task "{name}" has no instance {instance}')
    return chosen


def _unit_sources(
    run: RunView, name: str, unit: int | None, pods: Sequence[TaskPod], attempt: int | None, asked: bool
) -> list[LogSource]:
    mine = [p for p in pods if p.task == name and p.instance == unit]
    status = _unit(run, name, unit)
    if attempt is not None:
        chosen = [p for p in mine if p.attempt == attempt]
        if not chosen and asked:
            tried = sorted({p.attempt for p in mine})
            raise LookupError(
                f'task "{name}" has no attempt {attempt} with a pod'
                + (f" (attempts with pods: {', '.join(map(str, tried))})" if tried else "")
            )
    else:
        chosen = [max(mine, key=lambda p: p.attempt)] if mine else []
    many = any(p.attempt > 1 for p in mine)
    newest = max((p.attempt for p in mine), default=0)
    kept = status.message if status is not None else None
    sources = [
        LogSource(_label(name, unit, pod.attempt, many), pod, None, kept if pod.attempt == newest else None)
        for pod in chosen
    ]
    if (
        not chosen
        and attempt is None
        and (asked or (status is not None and status.state not in {"Pending", "Skipped"}))
    ):
        note, tail = _gone_note(run, name, unit)
        sources.append(LogSource(_label(name, unit, 1, False), None, note, tail))
    return sources


def log_sources(
    run: RunView,
    pods: Sequence[TaskPod],
    task: str | None = None,
    attempt: int | None = None,
    instance: int | None = None,
) -> list[LogSource]:
    """What to show, in the run's task order: for each task (or ``task``),
    and each instance of a fanned-out one, the newest attempt's pod, or
    ``attempt``'s when given. Where the status says it ran but its pod is
    gone, a note and the log tail the status keeps stand in for it.

    Raises LookupError naming the choices when ``task``/``attempt``/``instance`` match nothing.
    """
    order = [t.name for level in levels(run.tasks) for t in level] + [
        t.name for t in run.tasks if t.is_finally
    ]
    known = set(order) | {p.task for p in pods}
    if task is not None and task not in known:
        choices = ", ".join(order) or "none yet"
        raise LookupError(f'run {run.name} has no task "{task}" (tasks: {choices})')
    wanted = [task] if task is not None else order + sorted({p.task for p in pods} - set(order))
    asked = task is not None
    return [
        source
        for name in wanted
        for unit in _units(run, name, pods, instance, asked)
        for source in _unit_sources(run, name, unit, pods, attempt, asked)
    ]
