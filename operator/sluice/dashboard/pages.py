"""The dashboard's pages, as HTML bodies (pure: objects in, markup out).

Each function returns what goes in the page's live region; the server wraps
it with ``html.page`` for a first load and sends it alone for live updates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sluice.dashboard.dag_svg import dag_svg
from sluice.dashboard.gantt_svg import gantt_svg
from sluice.dashboard.html import colour, esc, state_badge
from sluice.views.run_view import AttemptView, RunView, TaskView, run_view, why
from sluice.views.timefmt import format_age, format_duration, parse_time

# Squares per pipeline on the overview, as Airflow's grid: the newest at the right.
GRID_RUNS = 25
RUNS_LISTED = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_href(namespace: str, name: str) -> str:
    return f"/ns/{quote(namespace)}/runs/{quote(name)}"


def pipeline_href(namespace: str, name: str) -> str:
    return f"/ns/{quote(namespace)}/pipelines/{quote(name)}"


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    return f"{format_age(seconds)} ago" if seconds >= 0 else f"in {format_age(-seconds)}"


def _schedule(spec: Mapping[str, Any]) -> str:
    schedule = spec.get("schedule") or {}
    parts = []
    if schedule.get("cron"):
        parts.append(f"{schedule['cron']} ({schedule.get('timezone') or 'UTC'})")
    if schedule.get("onAssets"):
        parts.append("on " + ", ".join(str(a) for a in schedule["onAssets"]))
    if schedule.get("suspend"):
        parts.append("suspended")
    return " · ".join(parts) or "—"


def _ready(obj: Mapping[str, Any]) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Valid":
            if condition.get("status") == "True":
                return state_badge("Succeeded", "valid")
            return state_badge("Failed", str(condition.get("reason") or "invalid"))
    return ""


def _squares(runs: Sequence[RunView]) -> str:
    cells = []
    for run in runs[-GRID_RUNS:]:
        cells.append(
            f'<a href="{run_href(run.namespace, run.name)}" title="{esc(run.name)}: {esc(run.phase)}">'
            f'<span class="sq" data-phase="{esc(run.phase)}" '
            f'style="background:{colour(run.phase)}"></span></a>'
        )
    return "".join(cells)


def _by_age(runs: Sequence[RunView]) -> list[RunView]:
    """Oldest first (creation time, then name, for a stable order)."""
    return sorted(runs, key=lambda r: (r.created or r.started or EPOCH, r.name))


def pipelines_page(
    pipelines: Sequence[Mapping[str, Any]], runs: Mapping[tuple[str, str], Sequence[RunView]], now: datetime
) -> str:
    """Every pipeline: schedule, next run, validity, its latest runs as squares."""
    shown = {(p["metadata"].get("namespace", ""), p["metadata"]["name"]) for p in pipelines}
    others = [run for key, group in runs.items() if key not in shown for run in group]
    other = (
        f"<section><h2>Runs of no Pipeline shown here</h2>{runs_table(others, now)}</section>"
        if others
        else ""
    )
    if not pipelines:
        return "<p>No pipelines yet. <code>kubectl apply</code> one.</p>" + other
    rows = []
    for obj in sorted(pipelines, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        mine = _by_age(runs.get((namespace, name), ()))
        status = obj.get("status") or {}
        rows.append(
            f'<tr data-pipeline="{esc(name)}"><td>{esc(namespace)}</td>'
            f'<td><a href="{pipeline_href(namespace, name)}">{esc(name)}</a></td>'
            f"<td>{esc(_schedule(obj.get('spec') or {}))}</td>"
            f"<td>{esc(_when(parse_time(status.get('nextScheduleTime')), now))}</td>"
            f"<td>{_ready(obj)}</td><td>{len(mine)}</td><td>{_squares(mine)}</td></tr>"
        )
    return (
        "<table><tr><th>Namespace</th><th>Pipeline</th><th>Schedule</th><th>Next run</th>"
        f"<th>Valid</th><th>Runs</th><th>Latest runs</th></tr>{''.join(rows)}</table>{other}"
    )


def runs_table(runs: Sequence[RunView], now: datetime) -> str:
    ordered = list(reversed(_by_age(runs)))[:RUNS_LISTED]
    rows = "".join(
        f'<tr data-run="{esc(r.name)}"><td><a href="{run_href(r.namespace, r.name)}">{esc(r.name)}</a></td>'
        f"<td>{state_badge(r.phase)}</td><td>{esc(r.progress or '')}</td>"
        f"<td>{esc(_when(r.started, now))}</td>"
        f"<td>{esc(format_duration(d) if (d := r.duration(now)) is not None else '')}</td>"
        f"<td>{esc(r.started_by or 'manual')}</td><td>{esc(r.reason or '')}</td></tr>"
        for r in ordered
    )
    more = f'<p class="muted">The newest {RUNS_LISTED} of {len(runs)}.</p>' if len(runs) > RUNS_LISTED else ""
    return (
        "<table><tr><th>Run</th><th>Status</th><th>Tasks</th><th>Started</th><th>Duration</th>"
        f"<th>Started by</th><th>Reason</th></tr>{rows}</table>{more}"
    )


def pipeline_page(pipeline: Mapping[str, Any], runs: Sequence[RunView], now: datetime) -> str:
    spec = pipeline.get("spec") or {}
    drawing = run_view({"metadata": pipeline.get("metadata") or {}}, spec)
    return (
        f"<section><h2>Pipeline {esc(pipeline['metadata']['name'])}</h2>"
        f"<p>{esc(spec.get('description') or '')}</p>"
        f"<p>Schedule: {esc(_schedule(spec))} {_ready(pipeline)}</p></section>"
        f"<section><h2>Tasks</h2>{dag_svg(drawing)}</section>"
        f"<section><h2>Runs</h2>{runs_table(runs, now)}</section>"
    )


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


def _attempt_rows(view: AttemptView, now: datetime) -> list[tuple[str, str]]:
    rows = [("state", view.state), ("attempts", str(view.attempts))]
    if view.pod_name:
        rows.append(("pod", view.pod_name))
    if view.started:
        rows.append(("started", view.started.isoformat()))
    if (duration := view.duration(now)) is not None:
        rows.append(("duration", format_duration(duration)))
    if view.exit_code is not None:
        rows.append(("exit code", str(view.exit_code)))
    if view.reason:
        rows.append(("reason", view.reason))
    return rows


def _details(run: RunView, task: TaskView, now: datetime) -> str:
    log = f"{run_href(run.namespace, run.name)}/tasks/{quote(task.name)}/log"
    message = f"<pre>{esc(task.message)}</pre>" if task.message else ""
    instances = ""
    if task.instances:
        rows = "".join(
            f"<tr><td>{i.index}</td><td>{esc(i.values or '')}</td><td>{state_badge(i.state)}</td>"
            f"<td>{esc(why(i) or '')}</td>"
            f'<td><a href="{log}?instance={i.index}">log</a></td></tr>'
            for i in task.instances
        )
        header = "<tr><th>#</th><th>Values</th><th>State</th><th>Why</th><th></th></tr>"
        instances = f"<h2>Instances</h2><table>{header}{rows}</table>"
    return (
        f'<section id="details" data-task="{esc(task.name)}">'
        f"<h2>Task {esc(task.name)} {state_badge(task.state)}</h2>"
        f"{_kv(_attempt_rows(task, now))}{message}<h2>Results</h2>{_kv(list(task.results))}{instances}"
        f'<p><a href="{log}">Log</a></p></section>'
    )


def run_page(
    obj: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    selected: str | None = None,
    pipeline_spec: Mapping[str, Any] | None = None,
) -> str:
    run = run_view(obj, pipeline_spec)
    duration = run.duration(now)
    pipeline = (
        f'<a href="{pipeline_href(run.namespace, run.pipeline)}">{esc(run.pipeline)}</a>'
        if run.pipeline
        else "inline"
    )
    head = (
        f'<section id="summary" data-phase="{esc(run.phase)}">'
        f"<h2>Run {esc(run.name)} {state_badge(run.phase)}</h2>"
        f"<p>Pipeline {pipeline} · {esc(run.progress or '')} tasks · started {esc(_when(run.started, now))}"
        f" · {esc(format_duration(duration) if duration is not None else '')}"
        f" · started by {esc(run.started_by or 'hand')}</p>"
        + (
            f"<p><b>{esc(run.reason)}</b>: {esc(run.message or '')}</p>"
            if run.reason and run.phase != "Succeeded"
            else ""
        )
        + "</section>"
    )
    task = run.task(selected) if selected else None
    details = _details(run, task, now) if task is not None else ""
    results = [(f"{t.name}.{k}", v) for t in run.tasks for k, v in t.results]
    conditions = "".join(
        f"<tr><td>{esc(c.get('type'))}</td><td>{esc(c.get('status'))}</td><td>{esc(c.get('reason'))}</td>"
        f"<td>{esc(c.get('message', ''))}</td></tr>"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )
    event_rows = "".join(
        f"<tr><td>{esc(e.get('type'))}</td><td>{esc(e.get('reason'))}</td><td>{esc(e.get('message'))}</td>"
        f"<td>{esc(e.get('count') or 1)}</td></tr>"
        for e in sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    )
    return (
        head
        + f"<section><h2>Graph</h2>{dag_svg(run, selected)}</section>"
        + details
        + f"<section><h2>Timeline</h2>{gantt_svg(run, now)}</section>"
        + f"<section><h2>Params</h2>{_kv(list(run.params))}<h2>Results</h2>{_kv(results)}</section>"
        + "<section><h2>Conditions</h2><table>"
        + "<tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th></tr>"
        + conditions
        + '</table><h2>Events</h2><table id="events">'
        + "<tr><th>Type</th><th>Reason</th><th>Message</th><th>Count</th></tr>"
        + event_rows
        + "</table></section>"
    )


def log_page(run_name: str, task: str, stream_src: str) -> str:
    """The log of a task: lines are appended as the server streams them."""
    return (
        f"<section><h2>{esc(run_name)} / {esc(task)} log</h2>"
        '<p id="log-status" class="muted">connecting…</p><pre id="log"></pre></section>'
        "<script>(function(){var pre=document.getElementById('log'),st=document.getElementById('log-status');"
        f"var s=new EventSource({esc_js(stream_src)});"
        "s.onopen=function(){pre.textContent='';};"
        "s.addEventListener('line',function(e){pre.appendChild(document.createTextNode(e.data+'\\n'));"
        "pre.scrollTop=pre.scrollHeight;});"
        "s.addEventListener('status',function(e){st.textContent=e.data;});"
        "s.addEventListener('end',function(e){st.textContent=e.data;s.close();});})();</script>"
    )


def esc_js(value: str) -> str:
    """A JavaScript string literal, safe inside an HTML script element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
