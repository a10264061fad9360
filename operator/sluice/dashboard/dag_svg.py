"""A run's DAG as SVG: a layered drawing (one column per dependency level,
as in Airflow's graph view), edges as in ``dependsOn``, each task coloured by
its state and linking to its details. Finally tasks stand in a last column.

Within a column tasks are ordered by the mean position of what they wait for
(one barycentre sweep), which removes most crossings at linear cost, so a
500-task DAG draws in milliseconds.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from sluice.dashboard.html import colour, esc
from sluice.views.run_view import RunView, TaskView, levels

NODE_W = 180
NODE_H = 36
COLUMN_GAP = 60
ROW_GAP = 12
MARGIN = 10
_LABEL = 24  # characters of a task name shown in its box


def _columns(run: RunView) -> list[list[TaskView]]:
    columns = levels(run.tasks)
    row: dict[str, float] = {}
    ordered: list[list[TaskView]] = []
    for level in columns:
        declared = {task.name: float(i) for i, task in enumerate(level)}

        def weight(task: TaskView, declared: dict[str, float] = declared) -> float:
            placed = [row[d] for d in task.deps if d in row]
            return sum(placed) / len(placed) if placed else declared[task.name]

        column = sorted(level, key=weight)
        row.update({task.name: float(i) for i, task in enumerate(column)})
        ordered.append(column)
    final = [task for task in run.tasks if task.is_finally]
    if final:
        ordered.append(final)
    return ordered


def _label(task: TaskView) -> str:
    name = task.name if len(task.name) <= _LABEL else task.name[: _LABEL - 1] + "…"
    if task.instances:
        counts = Counter(i.state for i in task.instances)
        done = counts.get("Succeeded", 0)
        name += f" x{len(task.instances)}" + (f" ({done}✓)" if done else "")
    return name


def _tooltip(task: TaskView) -> str:
    parts = [f"{task.name}: {task.state}"]
    if task.attempts > 1:
        parts.append(f"attempt {task.attempts}/{task.max_attempts}")
    if task.reason:
        parts.append(task.reason)
    return " · ".join(parts)


def dag_svg(run: RunView, selected: str | None = None) -> str:
    """The SVG element (no XML prolog) for ``run``'s tasks."""
    columns = _columns(run)
    if not columns:
        return '<p class="muted">No tasks to draw yet.</p>'
    where: dict[str, tuple[int, int]] = {}
    for c, column in enumerate(columns):
        for r, task in enumerate(column):
            where[task.name] = (MARGIN + c * (NODE_W + COLUMN_GAP), MARGIN + r * (NODE_H + ROW_GAP))
    width = MARGIN * 2 + len(columns) * (NODE_W + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + max(len(c) for c in columns) * (NODE_H + ROW_GAP) - ROW_GAP
    edges = []
    for task in run.tasks:
        x2, y2 = where[task.name]
        for dep in task.deps:
            if dep not in where:
                continue
            x1, y1 = where[dep]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
            mid = (sx + ex) / 2
            edges.append(f'<path d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"/>')
    nodes = []
    for task in run.tasks:
        x, y = where[task.name]
        chosen = " selected" if task.name == selected else ""
        text_colour = "#1d2430" if task.state in {"Pending", "Skipped"} else "#ffffff"
        nodes.append(
            f'<a href="?task={quote(task.name)}#details">'
            f'<g class="task{chosen}" data-task="{esc(task.name)}" data-state="{esc(task.state)}">'
            f"<title>{esc(_tooltip(task))}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5" fill="{colour(task.state)}"/>'
            f'<text x="{x + 8}" y="{y + 22}" fill="{text_colour}">{esc(_label(task))}</text>'
            "</g></a>"
        )
    return (
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<g fill="none" stroke="#8a94a3" stroke-width="1.5">{"".join(edges)}</g>'
        f"{''.join(nodes)}</svg>"
    )
