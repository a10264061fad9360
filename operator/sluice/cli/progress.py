"""What `start --wait` prints while it follows a run: one line per task
whose state changed since the last look, and the run's end. Pure, so what a
CI log will show is unit-tested.
"""

from __future__ import annotations

from datetime import datetime

from sluice.cli.style import Painter
from sluice.views.run_view import RunView, why
from sluice.views.timefmt import format_duration

# Exit codes of `start --wait` (and `graph --watch`), documented in the README.
EXIT_SUCCEEDED = 0
EXIT_NOT_SUCCEEDED = 1
EXIT_TIMED_OUT = 3


def task_changes(before: RunView | None, after: RunView, painter: Painter, now: datetime) -> list[str]:
    """A line per task whose display state (or attempt) differs from ``before``."""
    old = {t.name: (t.state, t.attempts) for t in before.tasks} if before else {}
    lines = []
    for task in after.tasks:
        if old.get(task.name, ("Pending", 0)) == (task.state, task.attempts):
            continue
        text = f"{painter.symbol(task.state)} {task.name} {painter.paint(task.state, task.state)}"
        if task.max_attempts > 1 and task.attempts > 1:
            text += f" (attempt {task.attempts}/{task.max_attempts})"
        duration = task.duration(now)
        if task.state in {"Succeeded", "Failed"} and duration is not None:
            text += f" in {format_duration(duration)}"
        reason = why(task)
        if task.state in {"Failed", "Waiting", "Retrying"} and reason:
            text += f": {reason}"
        lines.append(text)
    return lines


def run_end(run: RunView, painter: Painter, now: datetime) -> tuple[str, int]:
    """The closing line and the exit code for a finished run."""
    duration = run.duration(now)
    text = f"{painter.symbol(run.phase)} run {run.name} {painter.paint(run.phase, run.phase)}"
    if duration is not None:
        text += f" in {format_duration(duration)}"
    if run.phase != "Succeeded" and run.reason:
        text += f": {run.reason}"
        if run.message:
            text += f": {run.message.splitlines()[0]}"
    return text, EXIT_SUCCEEDED if run.phase == "Succeeded" else EXIT_NOT_SUCCEEDED
