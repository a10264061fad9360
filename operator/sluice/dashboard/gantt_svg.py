"""A run's timeline (Gantt chart): one bar per task from its (latest
attempt's) start to its end, or to now while it runs, on one time axis from
the run's start, so where the time went shows at a glance.
"""

from __future__ import annotations

from datetime import datetime

from sluice.dashboard.html import colour, esc
from sluice.views.run_view import RunView
from sluice.views.timefmt import format_duration

LABEL_W = 200
BAR_AREA = 700
ROW_H = 20


def gantt_svg(run: RunView, now: datetime) -> str:
    started = [t for t in run.tasks if t.started is not None]
    if run.started is None or not started:
        return '<p class="muted">No task has started yet.</p>'
    origin = min([run.started, *(t.started for t in started if t.started)])
    end = run.finished or now
    span = max((end - origin).total_seconds(), 1.0)
    scale = BAR_AREA / span
    rows = []
    for i, task in enumerate(started):
        assert task.started is not None
        finish = task.finished or (now if task.state in {"Running", "Retrying", "Waiting"} else task.started)
        x = LABEL_W + (task.started - origin).total_seconds() * scale
        w = max((finish - task.started).total_seconds() * scale, 2.0)
        y = i * ROW_H
        duration = task.duration(now)
        label = format_duration(duration) if duration is not None else ""
        rows.append(
            f'<g class="bar" data-task="{esc(task.name)}" data-state="{esc(task.state)}">'
            f"<title>{esc(task.name)}: {esc(task.state)} {esc(label)}</title>"
            f'<text x="0" y="{y + 14}">{esc(task.name[:28])}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 6}" '
            f'fill="{colour(task.state)}"/>'
            f'<text x="{x + w + 4:.1f}" y="{y + 14}" fill="#5b6573">{esc(label)}</text></g>'
        )
    height = len(started) * ROW_H + 24
    width = LABEL_W + BAR_AREA + 80
    axis_y = len(started) * ROW_H + 16
    return (
        f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f"{''.join(rows)}"
        f'<text x="{LABEL_W}" y="{axis_y}" fill="#5b6573">0s</text>'
        f'<text x="{LABEL_W + BAR_AREA - 40}" y="{axis_y}" fill="#5b6573">{esc(format_duration(span))}</text>'
        "</svg>"
    )
