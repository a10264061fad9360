"""Compute a run's status from what was observed (pure, no I/O).

The same observations always give the same status, so a reconcile that saw
nothing new writes nothing: no status churn, no self-triggered loops.
Timestamps come from the pods or from the previous status, never from "now",
except for the first time a transition is seen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from sluice.api.v1alpha1 import (
    FAILED_TASK_PHASES,
    FINISHED_TASK_PHASES,
    RECORDED_TASK_PHASES,
    UNSUCCESSFUL_TASK_PHASES,
    AttemptStatus,
    Condition,
    InstanceStatus,
    PipelineRunStatus,
    ResultValue,
    TaskPhase,
    TaskRunStatus,
)
from sluice.engine.clock import parse_time
from sluice.engine.conditions import condition, set_condition
from sluice.engine.dag import Graph, resolve_task_phases, run_phase
from sluice.engine.matrix import Fanout, unit_key
from sluice.engine.observe import STUCK_REASONS, TaskObservation, truncate

SUCCEEDED = "Succeeded"


def format_duration(start: str, end: str) -> str:
    """Like kubectl's ages: 45s, 3m12s, 2h5m."""
    seconds = max(0, int((parse_time(end) - parse_time(start)).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


SKIP_MESSAGE_NAMES = 5


def _named(tasks: list[str], phases: Mapping[str, str]) -> str:
    """A few upstream tasks and their phases, then how many more: a task
    under a 1,000-way fan-in must not get a message the API refuses.
    """
    shown = ", ".join(f'"{t}" {phases[t].lower()}' for t in tasks[:SKIP_MESSAGE_NAMES])
    more = len(tasks) - SKIP_MESSAGE_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _skip_message(graph: Graph, name: str, phases: Mapping[str, str]) -> str:
    rule = graph.rules.get(name, "AllSucceeded")
    if rule == "AllSucceeded":
        blockers = [dep for dep in graph.deps[name] if phases[dep] in UNSUCCESSFUL_TASK_PHASES]
        return "skipped because upstream " + _named(blockers, phases)
    return f"skipped: trigger rule {rule} not met (upstream {_named(list(graph.deps[name]), phases)})"


def task_statuses(
    graph: Graph,
    observed: Mapping[str, TaskObservation],
    previous: Mapping[str, TaskRunStatus],
    skipped_by_when: Mapping[str, str] | None = None,
    fanouts: Mapping[str, Fanout] | None = None,
) -> tuple[dict[str, str], list[TaskRunStatus]]:
    """Phases and status entries for every task, in declaration order.

    A task whose pod vanished (deleted by hand, or by a TTL) keeps the
    terminal phase the previous status recorded: status is the run's memory.
    A fanned-out task (in ``fanouts``) gets one entry per instance, from
    that instance's observation (keyed ``task[index]``), and a phase that
    sums them up; its dependents' trigger rules count the instances.

    Entries are built without validation (``model_construct``): every value
    comes from the models or the pods, and validating 5,000 entries twice a
    pass was a third of a big run's pass.
    """
    observed_phases = {name: obs.phase for name, obs in observed.items()}
    for name, prev in previous.items():
        if name not in observed_phases and prev.phase in RECORDED_TASK_PHASES and name in graph.deps:
            observed_phases[name] = prev.phase
    fanned: dict[str, TaskRunStatus] = {}
    for name, fanout in (fanouts or {}).items():
        entry = fanned_entry(name, fanout, observed, previous.get(name))
        fanned[name] = entry
        if entry.phase != "Pending":
            observed_phases[name] = entry.phase
    instance_phases = {
        name: [i.phase for i in entry.instances or ()] for name, entry in fanned.items() if entry.instances
    }
    when_false = skipped_by_when or {}
    phases = resolve_task_phases(graph, observed_phases, when_false, instance_phases)
    entries = []
    for name in graph.order:
        phase = phases[name]
        obs = observed.get(name)
        if name in fanned:
            entries.append(fanned[name])
        elif obs is not None:
            entries.append(
                TaskRunStatus.model_construct(name=name, **_attempt_fields(obs, previous.get(name)))
            )
        elif name in previous and previous[name].phase in RECORDED_TASK_PHASES:
            entries.append(previous[name])
        elif phase == "Skipped" and name in when_false:
            entries.append(
                TaskRunStatus.model_construct(
                    name=name, phase="Skipped", reason="WhenConditionFalse", message=when_false[name]
                )
            )
        elif phase == "Skipped":
            entries.append(
                TaskRunStatus.model_construct(
                    name=name,
                    phase="Skipped",
                    reason="UpstreamNotSucceeded",
                    message=_skip_message(graph, name, phases),
                )
            )
        elif name in previous and previous[name].instances:
            # A rerun's fanned-out task keeps the instances it reuses.
            entries.append(previous[name])
        else:
            entries.append(TaskRunStatus.model_construct(name=name, phase="Pending"))
    return phases, entries


def _attempt_fields(obs: TaskObservation, recorded: TaskRunStatus | InstanceStatus | None) -> dict[str, Any]:
    """A task's (or an instance's) entry fields from its latest attempt."""
    # The start recorded for this attempt stands (when its pod was created);
    # the pod's own startTime only fills in for a pod the status has not
    # recorded (met after a restart).
    same_attempt = recorded is not None and recorded.pod_name == obs.pod_name
    started = recorded.start_time if recorded is not None and same_attempt else None
    return {
        "phase": cast(TaskPhase, obs.phase),
        "pod_name": obs.pod_name or None,
        "start_time": started or obs.start_time,
        "completion_time": obs.completion_time,
        "exit_code": obs.exit_code if obs.phase == "Failed" else None,
        "reason": obs.reason,
        # Bounded here whatever produced it: status must fit in etcd.
        "message": truncate(obs.message),
        "attempts": obs.attempt + 1 if obs.attempt > 0 or obs.reason == "Retrying" else None,
        "results": _results(obs, recorded),
    }


def fanned_entry(
    name: str,
    fanout: Fanout,
    observed: Mapping[str, TaskObservation],
    previous: TaskRunStatus | None,
) -> TaskRunStatus:
    """A fanned-out task's entry: its instances, and a phase summing them up
    (Pending until one starts, Running until all end, then Failed if any
    failed, else Succeeded). No instances: Skipped; no valid matrix: Failed.
    """
    if previous is not None and previous.phase == "Failed" and not previous.instances:
        # It could not fan out (a bad list, past the limits): that stands.
        return previous
    if fanout.failed:
        return TaskRunStatus.model_construct(
            name=name, phase="Failed", reason=fanout.reason, message=truncate(fanout.message)
        )
    if not fanout.instances:
        return TaskRunStatus.model_construct(
            name=name, phase="Skipped", reason="EmptyMatrix", message="its matrix gave no instances"
        )
    recorded = {i.index: i for i in (previous.instances if previous is not None else None) or ()}
    instances = []
    for index in range(len(fanout.instances)):
        obs = observed.get(unit_key(name, index))
        kept = recorded.get(index)
        label = fanout.label(index) or (kept.values if kept is not None else None)
        if obs is not None:
            fields = _attempt_fields(obs, kept)
            if (
                kept is not None
                and kept.values == label
                and all(getattr(kept, k) == v for k, v in fields.items())
            ):
                instances.append(kept)  # unchanged: no new object (a 1,000-way fan-out, every pass)
            else:
                instances.append(InstanceStatus.model_construct(index=index, values=label, **fields))
        elif kept is not None and kept.phase in RECORDED_TASK_PHASES and _same_values(kept, label):
            instances.append(kept)
        else:
            instances.append(InstanceStatus.model_construct(index=index, values=label, phase="Pending"))
    return _summed_up(name, instances)


def _same_values(kept: InstanceStatus, label: str | None) -> bool:
    """Whether a recorded instance is the one at its index now: a rerun
    reuses instances by index, which holds only for the same values.
    """
    return not label or kept.values is None or kept.values == label


def _summed_up(name: str, instances: list[InstanceStatus]) -> TaskRunStatus:
    phases = [i.phase for i in instances]
    counts = {phase: phases.count(phase) for phase in dict.fromkeys(phases)}
    summary = f"{len(instances)} instances: " + ", ".join(
        f"{count} {phase.lower()}" for phase, count in counts.items()
    )
    phase: TaskPhase
    if all(p == "Pending" for p in phases):
        phase = "Pending"
    elif all(p in FINISHED_TASK_PHASES for p in phases):
        phase = "Failed" if any(p in FAILED_TASK_PHASES for p in phases) else "Succeeded"
    else:
        phase = "Running"
    failed = next((i for i in instances if i.phase in FAILED_TASK_PHASES), None)
    if failed is not None:
        summary += f"; instance {failed.index} ({failed.values}): {failed.message or failed.reason}"
    starts = [i.start_time for i in instances if i.start_time]
    ends = [i.completion_time for i in instances if i.completion_time]
    return TaskRunStatus.model_construct(
        name=name,
        phase=phase,
        start_time=min(starts, key=parse_time) if starts else None,
        completion_time=max(ends, key=parse_time) if phase in FINISHED_TASK_PHASES and ends else None,
        reason="InstanceFailed" if phase == "Failed" else None,
        message=truncate(summary),
        instances=instances,
    )


def unit_entries(status: PipelineRunStatus) -> list[TaskRunStatus]:
    """Every task's entry, with a fanned-out task's instances in its place as
    entries keyed ``task[index]``: what the per-attempt rules (retries,
    results, finalizers, lost pods) read.

    Five rules read them on every pass: the answer for the last few status
    objects is kept (by identity; statuses are replaced, never changed in
    place), so a 1,000-instance run builds them once per status, not five
    times.
    """
    for held, entries in _UNITS:
        if held is status:
            return entries
    result: list[TaskRunStatus] = []
    for entry in status.tasks or ():
        if not entry.instances:
            result.append(entry)
            continue
        for instance in entry.instances:
            fields = {k: getattr(instance, k) for k in INSTANCE_FIELDS}
            result.append(TaskRunStatus.model_construct(name=unit_key(entry.name, instance.index), **fields))
    _UNITS.append((status, result))
    return result


# (status, its unit entries) for the statuses read last; a deque keeps them alive,
# so an identity check can never meet a recycled id.
_UNITS: deque[tuple[PipelineRunStatus, list[TaskRunStatus]]] = deque(maxlen=4)


# What an instance's entry shares with a task's.
INSTANCE_FIELDS = tuple(AttemptStatus.model_fields)


def recorded_fanouts(status: PipelineRunStatus) -> dict[str, Fanout]:
    """The fan-outs the status records, as far as their count: enough to
    keep (or cancel) their instances without expanding again.
    """
    return {
        entry.name: Fanout(tuple({} for _ in range(max(i.index for i in entry.instances) + 1)))
        for entry in status.tasks or ()
        if entry.instances
    }


def _results(
    obs: TaskObservation, previous: TaskRunStatus | InstanceStatus | None
) -> list[ResultValue] | None:
    """A succeeded task's results; kept from the last status once its pod is gone."""
    if obs.results is not None:
        return [ResultValue(name=k, value=v) for k, v in obs.results] or None
    if previous is not None and previous.phase == "Succeeded" and obs.phase == "Succeeded":
        return previous.results
    return None


def _outcome_condition(phase: str, entries: list[TaskRunStatus], now: str) -> Condition:
    failed = [e for e in entries if e.phase == "Failed"]
    total = len(entries)
    done = sum(1 for e in entries if e.phase in FINISHED_TASK_PHASES)
    if phase == "Succeeded":
        return condition(SUCCEEDED, "True", "Succeeded", f"all {total} tasks succeeded", now)
    if phase == "Failed":
        first = failed[0]
        detail = f": {first.message}" if first.message else ""
        names = ", ".join(f'"{e.name}"' for e in failed[:10])
        if len(failed) > 10:
            names += f" and {len(failed) - 10} more"
        plural = "s" if len(failed) > 1 else ""
        return condition(SUCCEEDED, "False", "TaskFailed", f"task{plural} {names} failed{detail}", now)
    reason = "Running" if phase == "Running" else "Pending"
    progress_text = f"{done} of {total} tasks completed"
    stuck = waiting_tasks(entries)
    if stuck:
        # Why the run does not move, where `kubectl get pipelineruns -o wide` shows it.
        name, why, message = stuck[0]
        more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
        text = f'task "{name}" cannot start{more}: {why}: {message}; {progress_text}'
        return condition(SUCCEEDED, "Unknown", why, text, now)
    return condition(SUCCEEDED, "Unknown", reason, progress_text, now)


def waiting_tasks(entries: list[TaskRunStatus]) -> list[tuple[str, str, str]]:
    """(task or task[index], reason, message) of attempts stuck before they run."""
    found = []
    for entry in entries:
        units: list[tuple[str, AttemptStatus]] = [
            (f"{entry.name}[{i.index}]", i) for i in entry.instances or ()
        ]
        units = units or [(entry.name, entry)]
        found += [
            (name, unit.reason or "", unit.message or "")
            for name, unit in units
            if unit.phase == "Running" and unit.reason in STUCK_REASONS
        ]
    return found


# All task messages of one run together: 1,024 characters each would make a
# 5,000-task run whose every task failed 5 MB, past etcd's 1.5 MiB object
# limit, and a run whose status cannot be written is stuck.
MESSAGE_BUDGET = 200_000
MIN_MESSAGE = 32


def bound_messages(entries: list[TaskRunStatus]) -> list[TaskRunStatus]:
    """Shorten every message (keeping its tail, where errors are) when together
    they pass the run's budget, instances' messages included. Shortening is
    idempotent, so a recorded message read back from the status is stable
    across passes.
    """
    sizes = [len(m.encode()) for e in entries for m in _messages(e)]
    if sum(sizes) <= MESSAGE_BUDGET:
        return entries
    limit = max(MIN_MESSAGE, MESSAGE_BUDGET // len(sizes))

    def bounded(item: Any) -> Any:
        if item.message and len(item.message.encode()) > limit:
            return item.model_copy(update={"message": truncate(item.message, limit)})
        return item

    result = []
    for entry in entries:
        shortened = bounded(entry)
        if shortened.instances:
            instances = [bounded(i) for i in shortened.instances]
            shortened = shortened.model_copy(update={"instances": instances})
        result.append(shortened)
    return result


def _messages(entry: TaskRunStatus) -> list[str]:
    found = [entry.message] if entry.message else []
    return found + [i.message for i in entry.instances or () if i.message]


def progress(entries: list[TaskRunStatus]) -> str:
    """``succeeded/total`` for ``kubectl get``, counting a fanned-out task's
    instances one by one (as pods are counted): a 1,000-way fan-out moves
    the figure as it goes instead of sitting at one task for an hour.
    """
    total = succeeded = 0
    for entry in entries:
        if entry.instances:
            total += len(entry.instances)
            succeeded += sum(1 for i in entry.instances if i.phase == "Succeeded")
        else:
            total += 1
            succeeded += entry.phase == "Succeeded"
    return f"{succeeded}/{total}"


def compute_status(
    previous: PipelineRunStatus,
    graph: Graph,
    observed: Mapping[str, TaskObservation],
    now: str,
    skipped_by_when: Mapping[str, str] | None = None,
    fanouts: Mapping[str, Fanout] | None = None,
) -> PipelineRunStatus:
    """The run's next status; ``previous`` must already hold the spec snapshot."""
    prev_tasks = {t.name: t for t in previous.tasks or ()}
    _, entries = task_statuses(graph, observed, prev_tasks, skipped_by_when, fanouts)
    entries = bound_messages(entries)
    phase = run_phase({e.name: e.phase for e in entries})
    start = previous.start_time or now
    status = previous.model_copy(
        update={
            "phase": phase,
            "tasks": entries,
            "start_time": start,
            "progress": progress(entries),
            "conditions": set_condition(previous.conditions, _outcome_condition(phase, entries, now)),
        }
    )
    if phase in ("Succeeded", "Failed"):
        ends = [e.completion_time for e in entries if e.completion_time]
        completion = previous.completion_time or max(ends, default=now)
        status.completion_time = completion
        status.duration = format_duration(start, completion)
    return status


def failed_status(
    previous: PipelineRunStatus, reason: str, message: str, now: str, phase: str = "Failed"
) -> PipelineRunStatus:
    """A run that ends before it starts: Failed at once (invalid spec,
    missing pipeline), or Cancelled while it waited.
    """
    ended = condition(SUCCEEDED, "False", reason, message, now)
    start = previous.start_time or now
    return previous.model_copy(
        update={
            "phase": phase,
            "start_time": start,
            "completion_time": previous.completion_time or now,
            "duration": format_duration(start, previous.completion_time or now),
            "conditions": set_condition(previous.conditions, ended),
        }
    )


def stopped_status(
    previous: PipelineRunStatus,
    graph: Graph,
    observed: Mapping[str, TaskObservation],
    phase: str,
    reason: str,
    message: str,
    now: str,
) -> PipelineRunStatus:
    """A run stopped before its end (cancelled, or past its timeout): every
    task (and instance) that had not finished is Cancelled, and the run
    ends in ``phase``.
    """
    status = compute_status(previous, graph, observed, now, fanouts=recorded_fanouts(previous))
    update = {"phase": "Cancelled", "reason": reason, "message": message, "completion_time": now}
    tasks = []
    for entry in status.tasks or ():
        task = entry
        if task.instances:
            instances = [
                i.model_copy(update=update) if i.phase in ("Pending", "Running") else i
                for i in task.instances
            ]
            task = task.model_copy(update={"instances": instances})
        tasks.append(task.model_copy(update=update) if task.phase in ("Pending", "Running") else task)
    ended = condition(SUCCEEDED, "False", reason, message, now)
    start = status.start_time or now
    return status.model_copy(
        update={
            "phase": phase,
            "tasks": tasks,
            "completion_time": now,
            "duration": format_duration(start, now),
            "conditions": set_condition(previous.conditions, ended),
        }
    )


def status_rejected_patch(conditions: list[Condition] | None, message: str, now: str) -> dict[str, Any]:
    """End a run whose own status the API server refuses (invalid, or too
    large): it could never record progress again, and retrying forever
    would hide that. The patch touches only the phase, the completion time
    and the conditions, so it is small and valid; the next pass, seeing the
    run finished, stops its pods.
    """
    why = truncate(f"the API server refused this run's status: {message}", 1024) or ""
    ended = condition(SUCCEEDED, "False", "StatusRejected", why, now)
    return {
        "status": {
            "phase": "Failed",
            "completionTime": now,
            "conditions": [c.to_api() for c in set_condition(conditions, ended)],
        }
    }
