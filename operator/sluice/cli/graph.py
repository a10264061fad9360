"""`kubectl sluice graph`: a run's DAG drawn as text, one line per task.

Tasks are grouped in dependency levels (level n runs after something in
level n-1), so the order of work reads top to bottom and each line names
what the task waits for. One line per task keeps a 50-task DAG within a
screen at 100 columns, where box-drawn graphs of wide DAGs turn to noise;
a failed, skipped or waiting task gets one more line saying why.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sluice.cli.style import Painter, fit
from sluice.views.run_view import RunView, TaskView, levels, why
from sluice.views.timefmt import format_duration

_STATE_WIDTH = 9
_DURATION_WIDTH = 7
# Instances whose failure is spelled out under a fanned-out task.
_FAILED_INSTANCES_SHOWN = 3


def _deps_text(deps: tuple[str, ...], room: int) -> str:
    """As many upstream names as fit, then how many more (a join of 48
    partitions stays one line and still says how many it waits for).
    """
    whole = ", ".join(deps)
    if len(whole) <= room:
        return whole
    shown: list[str] = []
    for count, name in enumerate(deps, start=1):
        more = f" +{len(deps) - count} more"
        if len(", ".join([*shown, name])) + len(more) > room:
            break
        shown.append(name)
    return ", ".join(shown) + f" +{len(deps) - len(shown)} more" if shown else f"{len(deps)} tasks"


def _instances_note(task: TaskView, painter: Painter) -> str:
    if not task.instances:
        return ""
    counts = Counter(instance.state for instance in task.instances)
    order = ("Succeeded", "Running", "Retrying", "Waiting", "Pending", "Failed", "Skipped", "Cancelled")
    parts = [f"{counts[state]}{painter.symbol(state)}" for state in order if counts.get(state)]
    return f"{len(task.instances)} instances: " + " ".join(parts)


def _task_lines(
    task: TaskView, level: str, name_width: int, width: int, painter: Painter, now: datetime
) -> list[str]:
    label = task.name + (" [matrix]" if task.fanned_out else "")
    duration = task.duration(now)
    notes = []
    if task.attempts > 1:
        notes.append(f"attempt {task.attempts}/{task.max_attempts}")
    if task.reason == "Reused":
        notes.append("reused")
    instances = _instances_note(task, painter)
    if instances:
        notes.append(instances)
    head = (
        f"{level:>3} {painter.symbol(task.state)} "
        f"{fit(label, name_width, painter.ellipsis).ljust(name_width)} "
        f"{painter.paint(task.state.ljust(_STATE_WIDTH), task.state)} "
        f"{(format_duration(duration) if duration is not None else '').rjust(_DURATION_WIDTH)}"
    )
    visible = 3 + 1 + 1 + 1 + name_width + 1 + _STATE_WIDTH + 1 + _DURATION_WIDTH
    tail = "  ".join(notes)
    room = width - visible - 2
    if task.deps:
        tail = (tail + "  " if tail else "") + f"{painter.arrow} "
        tail += _deps_text(task.deps, room - len(tail))
    line = head + ("  " + painter.dim(fit(tail, room, painter.ellipsis)) if tail and room > 3 else "")
    lines = [line.rstrip()]
    indent = " " * 6
    reason = why(task)
    if reason and not task.instances:
        lines.append(indent + painter.paint(fit(reason, width - len(indent), painter.ellipsis), task.state))
    failed = [i for i in task.instances if why(i)]
    for instance in failed[:_FAILED_INSTANCES_SHOWN]:
        text = f"[{instance.index}] {instance.values or ''} {why(instance)}".replace("  ", " ")
        lines.append(indent + painter.paint(fit(text, width - len(indent), painter.ellipsis), instance.state))
    if len(failed) > _FAILED_INSTANCES_SHOWN:
        lines.append(indent + f"and {len(failed) - _FAILED_INSTANCES_SHOWN} more instances")
    return lines


def render_graph(run: RunView, painter: Painter, now: datetime, width: int = 100) -> list[str]:
    """The run's header, its tasks level by level, then its finally tasks."""
    width = max(width, 60)
    duration = run.duration(now)
    header = [
        painter.bold(run.name),
        f"pipeline {run.pipeline}" if run.pipeline else "",
        f"{painter.symbol(run.phase)} {painter.paint(run.phase, run.phase)}",
        run.progress or "",
        format_duration(duration) if duration is not None else "",
    ]
    lines = ["  ".join(part for part in header if part)]
    about = []
    if run.started_by:
        about.append(f"started by {run.started_by}")
    if run.params:
        about.append("params " + " ".join(f"{k}={v}" for k, v in run.params))
    if about:
        lines.append(painter.dim(fit(" · ".join(about), width, painter.ellipsis)))
    if run.reason and run.phase != "Succeeded":
        why = f"{run.reason}: {run.message}" if run.message else run.reason
        lines.append(
            painter.paint(fit(why.splitlines()[0] if why else "", width, painter.ellipsis), run.phase)
        )
    if not run.tasks:
        lines.append("(no tasks to show yet: the run has not taken its pipeline's snapshot)")
        return lines
    longest = max(len(t.name) + (9 if t.fanned_out else 0) for t in run.tasks)
    name_width = max(8, min(longest, width // 3))
    lines.append("")
    for number, level in enumerate(levels(run.tasks), start=1):
        for position, task in enumerate(level):
            lines.extend(
                _task_lines(task, str(number) if position == 0 else "", name_width, width, painter, now)
            )
    final = [task for task in run.tasks if task.is_finally]
    if final:
        lines.append(painter.dim("finally"))
        for task in final:
            lines.extend(_task_lines(task, "", name_width, width, painter, now))
    return lines
