"""`kubectl sluice list`: runs as kubectl prints a table (upper-case headers,
columns three spaces apart, ages as in AGE), newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sluice.cli.style import Painter
from sluice.views.run_view import RunView
from sluice.views.timefmt import format_age, format_duration


def _row(run: RunView, now: datetime, wide: bool, all_namespaces: bool) -> list[str]:
    duration = run.duration(now)
    row = [run.namespace] if all_namespaces else []
    row += [
        run.name,
        run.pipeline or "",
        run.phase,
        run.progress or "",
        format_age((now - run.started).total_seconds()) if run.started else "",
        format_duration(duration) if duration is not None else "",
    ]
    if wide:
        row += [run.started_by or "manual", run.reason or ""]
    return row


def render_runs(
    runs: Sequence[RunView], now: datetime, painter: Painter, wide: bool = False, all_namespaces: bool = False
) -> list[str]:
    """The table's lines, header first; empty when there are no runs (the
    caller says so, as kubectl does, on stderr).
    """
    if not runs:
        return []
    headers = ["NAMESPACE"] if all_namespaces else []
    headers += ["NAME", "PIPELINE", "STATUS", "TASKS", "STARTED", "DURATION"]
    if wide:
        headers += ["STARTED BY", "REASON"]
    ordered = sorted(
        runs,
        key=lambda r: (r.created or r.started or now, r.namespace, r.name),
        reverse=True,
    )
    rows = [_row(run, now, wide, all_namespaces) for run in ordered]
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    status_column = headers.index("STATUS")
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        cells = []
        for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
            padded = cell.ljust(w)
            cells.append(painter.paint(padded, cell) if i == status_column else padded)
        lines.append("   ".join(cells).rstrip())
    return lines
