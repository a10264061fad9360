"""The dashboard's pages, rendered without a cluster: what each shows, in
what order, and that nothing a user wrote is ever markup."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sluice.dashboard.dag_svg import dag_svg
from sluice.dashboard.gantt_svg import gantt_svg
from sluice.dashboard.pages import GRID_RUNS, pipelines_page, run_page, runs_table
from sluice.views.run_view import run_view
from tests.unit.cli.runs import entry, run_object, spec_task

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)


def _states(svg: str) -> dict[str, str]:
    return dict(re.findall(r'data-task="([^"]+)" data-state="([^"]+)"', svg))


def test_the_dag_colours_each_task_by_state_with_one_edge_per_dependency() -> None:
    obj = run_object(
        [spec_task("a"), spec_task("b", "a"), spec_task("c", "a"), spec_task("d", "b", "c")],
        [entry("a", "Succeeded"), entry("b", "Failed"), entry("c", "Running"), entry("d", "Skipped")],
    )
    svg = dag_svg(run_view(obj), selected="b")
    assert _states(svg) == {"a": "Succeeded", "b": "Failed", "c": "Running", "d": "Skipped"}
    assert svg.count("<path ") == 4
    assert 'class="task selected" data-task="b"' in svg
    xs = dict(re.findall(r'data-task="([^"]+)"[^>]*><title>[^<]*</title><rect x="(\d+)"', svg))
    assert int(xs["a"]) < int(xs["b"]) == int(xs["c"]) < int(xs["d"])


def test_a_join_sits_level_with_its_parents_middle() -> None:
    # four parents in a column, a child of the last two: it is drawn in their
    # half, not at the top (the barycentre ordering)
    tasks = [spec_task("root"), *(spec_task(f"p{i}", "root") for i in range(4))]
    # declared join first: only the ordering by parents puts it below
    tasks += [spec_task("join", "p2", "p3"), spec_task("top", "p0")]
    svg = dag_svg(run_view(run_object(tasks, [])))
    ys = dict(re.findall(r'data-task="([^"]+)"[^>]*><title>[^<]*</title><rect x="\d+" y="(\d+)"', svg))
    assert int(ys["top"]) < int(ys["join"])


def test_names_and_messages_are_text_never_markup() -> None:
    hostile = '<script>alert(1)</script>"'
    obj = run_object(
        [spec_task("a")],
        [entry("a", "Failed", message=hostile, reason="Error")],
        phase="Failed",
        params=[{"name": "note", "value": hostile}],
        conditions=[{"type": "Succeeded", "status": "False", "reason": "TaskFailed", "message": hostile}],
    )
    body = run_page(obj, [{"type": "Warning", "reason": "TaskFailed", "message": hostile}], NOW, selected="a")
    assert "<script>" not in body
    assert body.count("&lt;script&gt;alert(1)&lt;/script&gt;&quot;") >= 4  # details, params, condition, event


def test_the_overview_shows_the_newest_runs_as_squares_oldest_first() -> None:
    runs = []
    for i in range(GRID_RUNS + 5):
        obj = run_object([], [], name=f"etl-{i:02d}", phase="Failed" if i % 2 else "Succeeded")
        obj["metadata"]["creationTimestamp"] = f"2026-11-24T{i // 60:02d}:{i % 60:02d}:00Z"
        runs.append(run_view(obj))
    pipelines = [
        {"metadata": {"name": "etl", "namespace": "etl"}, "spec": {"schedule": {"cron": "0 3 * * *"}}}
    ]
    body = pipelines_page(pipelines, {("etl", "etl"): list(reversed(runs))}, NOW)
    linked = re.findall(r'href="/ns/etl/runs/(etl-\d+)"', body)
    assert linked == [f"etl-{i:02d}" for i in range(5, GRID_RUNS + 5)]
    assert "0 3 * * * (UTC)" in body
    table = runs_table(runs, NOW)
    assert re.findall(r'data-run="(etl-\d+)"', table)[:2] == [
        f"etl-{GRID_RUNS + 4:02d}",
        f"etl-{GRID_RUNS + 3:02d}",
    ]


def test_the_timeline_has_a_bar_per_started_task_sized_by_duration() -> None:
    obj = run_object(
        [spec_task("a"), spec_task("b", "a"), spec_task("c", "b")],
        [
            entry("a", "Succeeded", startTime="2026-11-24T10:00:00Z", completionTime="2026-11-24T10:00:10Z"),
            entry("b", "Running", startTime="2026-11-24T10:00:10Z"),
        ],
    )
    svg = gantt_svg(run_view(obj), datetime(2026, 11, 24, 10, 0, 40, tzinfo=UTC))
    widths = dict(re.findall(r'data-task="([^"]+)".*?<rect x="[\d.]+" y="\d+" width="([\d.]+)"', svg))
    assert set(widths) == {"a", "b"}  # c never started
    assert abs(float(widths["b"]) / float(widths["a"]) - 3.0) < 0.01  # 30 s running against 10 s


def test_a_server_sent_event_cannot_be_ended_or_forged_from_its_data() -> None:
    from sluice.dashboard.server import frame

    forged = "x\r\revent: end\rdata: fake end\r\n50%\n"
    assert frame("line", forged) == (
        b"event: line\ndata: x\ndata: \ndata: event: end\ndata: data: fake end\ndata: 50%\ndata: \n\n"
    )
    assert frame("end", "") == b"event: end\ndata: \n\n"


def test_runs_of_no_pipeline_shown_get_their_own_list() -> None:
    inline = run_object([spec_task("a")], [], name="adhoc-1")
    inline["status"]["pipelineName"] = "(inline)"
    pipelines = [{"metadata": {"name": "etl", "namespace": "etl"}, "spec": {}}]
    body = pipelines_page(pipelines, {("etl", "(inline)"): [run_view(inline)]}, NOW)
    assert "Runs of no Pipeline shown here" in body and 'data-run="adhoc-1"' in body
