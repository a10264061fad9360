"""`kubectl sluice list` and the times it prints."""

from __future__ import annotations

from datetime import UTC, datetime

from sluice.cli.progress import run_end, task_changes
from sluice.cli.style import Painter
from sluice.cli.table import render_runs
from sluice.views.run_view import run_view
from sluice.views.timefmt import format_age, format_duration
from tests.unit.cli.runs import entry, run_object, spec_task

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_durations_and_ages_read_like_kubectl() -> None:
    assert [format_duration(s) for s in (0.42, 12, 185, 7620, 90000)] == [
        "0.4s",
        "12s",
        "3m05s",
        "2h07m",
        "1d01h",
    ]
    assert [format_age(s) for s in (45, 300, 330, 7200, 11100, 36000, 3 * 86400 + 7200, 30 * 86400)] == [
        "45s",
        "5m",
        "5m30s",
        "120m",
        "3h5m",
        "10h",
        "3d2h",
        "30d",
    ]


def test_runs_newest_first_with_aligned_columns_and_wide_extras() -> None:
    older = run_object(
        [], [], name="etl-1", phase="Succeeded", progress="4/4", completionTime="2026-11-24T10:00:30Z"
    )
    newer = run_object(
        [], [], name="etl-2", phase="Failed", progress="1/4", completionTime="2026-11-24T11:00:10Z"
    )
    newer["metadata"]["creationTimestamp"] = newer["status"]["startTime"] = "2026-11-24T11:00:00Z"
    newer["status"]["conditions"] = [{"type": "Succeeded", "status": "False", "reason": "TaskFailed"}]
    newer["metadata"]["labels"] = {"sluice.dev/scheduled-by": "etl"}
    lines = render_runs([run_view(older), run_view(newer)], NOW, Painter(), wide=True)
    assert lines[0].split() == [
        "NAME",
        "PIPELINE",
        "STATUS",
        "TASKS",
        "STARTED",
        "DURATION",
        "STARTED",
        "BY",
        "REASON",
    ]
    assert lines[1].split() == ["etl-2", "etl", "Failed", "1/4", "60m", "10s", "schedule", "TaskFailed"]
    assert lines[2].split() == ["etl-1", "etl", "Succeeded", "4/4", "120m", "30s", "manual"]
    assert lines[1].index("Failed") == lines[0].index("STATUS") == lines[2].index("Succeeded")
    assert render_runs([], NOW, Painter()) == []


def test_wait_prints_each_change_once_and_exits_by_outcome() -> None:
    tasks = [spec_task("a"), spec_task("b", "a")]
    first = run_view(run_object(tasks, [entry("a", "Running", startTime="2026-11-24T10:00:00Z")]))
    second = run_view(
        run_object(
            tasks,
            [
                entry(
                    "a", "Succeeded", startTime="2026-11-24T10:00:00Z", completionTime="2026-11-24T10:00:04Z"
                ),
                entry("b", "Failed", reason="Error", completionTime="2026-11-24T10:00:09Z"),
            ],
            phase="Failed",
            completionTime="2026-11-24T10:00:09Z",
            conditions=[
                {"type": "Succeeded", "status": "False", "reason": "TaskFailed", "message": 'task "b" failed'}
            ],
        )
    )
    painter = Painter(unicode=False)
    assert task_changes(None, first, painter, NOW) == ["* a Running"]
    assert task_changes(first, first, painter, NOW) == []
    assert task_changes(first, second, painter, NOW) == ["+ a Succeeded in 4.0s", "x b Failed: Error"]
    assert run_end(second, painter, NOW) == ('x run etl-1 Failed in 9.0s: TaskFailed: task "b" failed', 1)
