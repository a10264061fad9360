"""`kubectl sluice graph`: the DAG a user reads in the terminal."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sluice.cli.graph import render_graph
from sluice.cli.style import Painter
from sluice.views.run_view import levels, run_view
from tests.unit.cli.runs import entry, run_object, spec_task

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
PLAIN = Painter(color=False, unicode=True)


def _line(lines: list[str], task: str) -> str:
    return next(line for line in lines if re.search(rf"\s{re.escape(task)}\s", line))


def failed_and_skipped_run() -> dict:
    return run_object(
        [
            spec_task("extract"),
            spec_task("transform", "extract", retries={"limit": 2}),
            spec_task("audit", "extract"),
            spec_task("load", "transform"),
        ],
        [
            entry(
                "extract",
                "Succeeded",
                startTime="2026-11-24T10:00:00Z",
                completionTime="2026-11-24T10:00:12Z",
            ),
            entry(
                "transform",
                "Failed",
                attempts=3,
                exitCode=3,
                reason="Error",
                message="reading input\nKeyError: 'region'",
                startTime="2026-11-24T10:00:13Z",
                completionTime="2026-11-24T10:01:20Z",
            ),
            entry("audit", "Running", startTime="2026-11-24T10:00:13Z"),
            entry("load", "Skipped", reason="UpstreamFailed", message='task "transform" failed'),
        ],
        phase="Running",
        progress="1/4",
    )


def test_levels_follow_dependencies_and_declaration_order() -> None:
    view = run_view(failed_and_skipped_run())
    assert [[t.name for t in level] for level in levels(view.tasks)] == [
        ["extract"],
        ["transform", "audit"],
        ["load"],
    ]


def test_each_task_shows_state_duration_attempt_and_why() -> None:
    lines = render_graph(run_view(failed_and_skipped_run()), PLAIN, NOW)
    extract = _line(lines, "extract")
    assert "✔" in extract and "Succeeded" in extract and "12s" in extract
    transform = _line(lines, "transform")
    assert (
        "✘" in transform and "Failed" in transform and "attempt 3/3" in transform and "← extract" in transform
    )
    why = lines[lines.index(transform) + 1]
    # the log tail's last line is the error, with the exit code
    assert "exit code 3: KeyError: 'region'" in why
    audit = _line(lines, "audit")
    assert "Running" in audit and "4m47s" in audit  # still running: counted to now
    load = _line(lines, "load")
    assert "⊘" in load and "Skipped" in load
    assert "UpstreamFailed" in lines[lines.index(load) + 1]


def test_levels_are_numbered_once_and_finally_tasks_come_last() -> None:
    obj = failed_and_skipped_run()
    obj["status"]["pipelineSpec"]["finally"] = [spec_task("notify")]
    lines = render_graph(run_view(obj), PLAIN, NOW)
    numbered = [line.split()[0] for line in lines if re.match(r"^\s+\d+ ", line)]
    assert numbered == ["1", "2", "3"]
    assert lines[-2] == "finally" and "notify" in lines[-1] and "Pending" in lines[-1]


def test_a_fifty_task_dag_fits_a_hundred_columns_one_line_per_task() -> None:
    tasks = [spec_task("source")] + [
        spec_task(f"partition-{i:02d}-with-a-long-name", "source") for i in range(48)
    ]
    tasks.append(spec_task("merge", *(t["name"] for t in tasks[1:])))
    lines = render_graph(run_view(run_object(tasks, [])), PLAIN, NOW, width=100)
    task_lines = [line for line in lines if "○" in line]
    assert len(task_lines) == 50
    assert max(len(line) for line in lines) <= 100
    assert _line(lines, "merge").endswith("← partition-00-with-a-long-name +47 more")


def test_ascii_fallback_and_colour_only_when_asked() -> None:
    view = run_view(failed_and_skipped_run())
    plain = "\n".join(render_graph(view, Painter(color=False, unicode=False), NOW))
    assert "\x1b[" not in plain and "✔" not in plain and "x transform" in plain
    coloured = "\n".join(render_graph(view, Painter(color=True, unicode=True), NOW))
    assert "\x1b[31m✘\x1b[0m" in coloured


def test_waiting_and_retrying_tasks_say_why() -> None:
    obj = run_object(
        [spec_task("pull"), spec_task("flaky", retries={"limit": 3})],
        [
            entry("pull", "Running", reason="ImagePullBackOff", message='Back-off pulling image "nope:1"'),
            entry("flaky", "Running", reason="Retrying", attempts=2, message="exit code 1: boom"),
        ],
    )
    lines = render_graph(run_view(obj), PLAIN, NOW)
    pull = _line(lines, "pull")
    assert "Waiting" in pull
    assert "ImagePullBackOff: Back-off pulling image" in lines[lines.index(pull) + 1]
    flaky = _line(lines, "flaky")
    assert "Retrying" in flaky and "attempt 2/4" in flaky


def test_fanned_out_task_counts_instances_and_names_the_failed_ones() -> None:
    instances = [
        {"index": i, "phase": "Succeeded", "values": f"region={r}"} for i, r in enumerate(["eu", "us"])
    ] + [{"index": 2, "phase": "Failed", "values": "region=ap", "exitCode": 1, "message": "no data"}]
    obj = run_object(
        [spec_task("regions", matrix={"axes": [{"name": "region", "values": ["eu", "us", "ap"]}]})],
        [entry("regions", "Failed", instances=instances)],
        phase="Failed",
    )
    lines = render_graph(run_view(obj), PLAIN, NOW)
    regions = _line(lines, "regions")
    assert "3 instances: 2✔ 1✘" in regions
    assert "[2] region=ap exit code 1: no data" in lines[lines.index(regions) + 1]


def test_run_without_snapshot_draws_from_the_pipeline_and_says_when_it_cannot() -> None:
    pending = {"metadata": {"name": "etl-2", "namespace": "etl"}, "spec": {"pipelineRef": {"name": "etl"}}}
    assert "has not taken its pipeline's snapshot" in render_graph(run_view(pending), PLAIN, NOW)[-1]
    drawn = render_graph(run_view(pending, {"tasks": [spec_task("a"), spec_task("b", "a")]}), PLAIN, NOW)
    assert "Pending" in _line(drawn, "b") and "← a" in _line(drawn, "b")


def test_a_cycle_is_drawn_not_lost() -> None:
    obj = run_object([spec_task("a", "b"), spec_task("b", "a"), spec_task("c")], [], phase="Failed")
    view = run_view(obj)
    assert [[t.name for t in level] for level in levels(view.tasks)] == [["c"], ["a", "b"]]
