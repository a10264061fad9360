"""The schedule's contract, replayed pass by pass with an injected clock:
each scheduled time loads once, across DST, long gaps, suspension and edits.

A ``Replay`` keeps what the API server would hold (the Pipeline's status and
its scheduled runs), applies each plan as the reconciler does, and moves a
fake clock, so weeks of a schedule's life run in milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.engine.pipeline_plan import (
    CreateRun,
    DeleteRun,
    PipelineFacts,
    ScheduledRun,
    own_scheduled_runs,
    plan_pipeline,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Replay:
    """One Pipeline, its runs, and the passes the operator makes over it."""

    def __init__(self, schedule: dict[str, Any] | None, created: datetime, name: str = "sales") -> None:
        spec: dict[str, Any] = {"tasks": [{"name": "a", "image": "busybox:1.36"}]}
        if schedule is not None:
            spec["schedule"] = schedule
        self.pipeline: dict[str, Any] = {
            "metadata": {
                "name": name,
                "namespace": "etl",
                "uid": "u1",
                "generation": 1,
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "resourceVersion": "1",
            },
            "spec": spec,
            "status": {},
        }
        self.runs: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.rerun_sources: frozenset[str] = frozenset()

    def edit(self, **schedule: Any) -> None:
        """The user changes the schedule (None removes a field or the schedule)."""
        spec = self.pipeline["spec"]
        if schedule.get("remove"):
            spec.pop("schedule", None)
        else:
            current = dict(spec.get("schedule") or {})
            current.update(schedule)
            spec["schedule"] = {k: v for k, v in current.items() if v is not None}
        self.pipeline["metadata"]["generation"] += 1

    def finish_all(self, phase: str = "Succeeded") -> None:
        for run in self.runs.values():
            run["status"] = {"phase": phase}

    def pass_at(self, now: datetime) -> list[str]:
        """One pass at ``now``; the names of the runs it created."""
        views = tuple(
            ScheduledRun(
                name,
                run["metadata"]["annotations"]["sluice.dev/scheduled-time"],
                (run.get("status") or {}).get("phase"),
            )
            for name, run in self.runs.items()
        )
        plan = plan_pipeline(PipelineFacts(self.pipeline, now, views, self.rerun_sources))
        made = []
        for action in plan.actions:
            if isinstance(action, CreateRun) and action.name not in self.runs:
                self.runs[action.name] = action.body
                self.created.append(action.body)
                made.append(action.name)
            elif isinstance(action, DeleteRun):
                self.runs.pop(action.name, None)
        if plan.status is not None:
            self.pipeline["status"] = plan.status.to_api()
        return made

    def passes(self, start: datetime, end: datetime, every: timedelta) -> list[str]:
        made = []
        now = start
        while now <= end:
            made += self.pass_at(now)
            now += every
        return made

    @property
    def dates(self) -> list[str]:
        return [body["metadata"]["annotations"]["sluice.dev/scheduled-date"] for body in self.created]

    def interval(self, name: str) -> tuple[str, str]:
        spec = self.runs[name]["spec"]["dataInterval"]
        return spec["start"], spec["end"]


# --- DST ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "cron", "start", "days"),
    [
        ("Europe/Paris", "0 2 * * *", utc(2026, 10, 23), 5),  # 02:00 twice on 10-25
        ("Europe/Paris", "30 2 * * *", utc(2026, 3, 27), 5),  # 02:30 never on 03-29
        ("America/New_York", "30 1 * * *", utc(2026, 10, 30), 5),  # 01:30 twice on 11-01
        ("America/New_York", "30 2 * * *", utc(2026, 3, 6), 5),  # 02:30 never on 03-08
    ],
)
def test_every_date_loads_exactly_once_across_a_dst_change(
    zone: str, cron: str, start: datetime, days: int
) -> None:
    # A pass every 10 minutes for the whole window, as wakes and events would.
    replay = Replay({"cron": cron, "timezone": zone}, created=start - timedelta(hours=3))
    replay.passes(start, start + timedelta(days=days), timedelta(minutes=10))
    assert len(replay.dates) == days
    assert len(set(replay.dates)) == days, replay.dates


def test_the_readmes_paris_example_runs_once_on_the_night_clocks_go_back() -> None:
    replay = Replay({"cron": "0 2 * * *", "timezone": "Europe/Paris"}, created=utc(2026, 10, 24, 12))
    made = replay.passes(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12), timedelta(minutes=5))
    assert made == ["sales-202610250000"]
    assert replay.interval("sales-202610250000") == ("2026-10-24T02:00:00+02:00", "2026-10-25T02:00:00+02:00")
    # The next interval starts where this one ended, in the new offset's words.
    replay.passes(utc(2026, 10, 25, 12), utc(2026, 10, 26, 2), timedelta(minutes=5))
    assert replay.interval("sales-202610260100") == ("2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00")


def test_a_skipped_time_fires_at_the_jump_and_its_interval_is_continuous() -> None:
    replay = Replay({"cron": "30 2 * * *", "timezone": "Europe/Paris"}, created=utc(2026, 3, 28, 12))
    made = replay.passes(utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), timedelta(minutes=5))
    assert made == ["sales-202603290100", "sales-202603300030"]
    assert replay.interval("sales-202603290100") == ("2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00")
    assert replay.interval("sales-202603300030")[0] == "2026-03-29T03:00:00+02:00"


# --- long gaps and suspension --------------------------------------------------------


@pytest.mark.parametrize("deadline", [None, 600])
def test_a_forty_day_suspend_of_an_hourly_schedule_fires_nothing_old_and_then_every_hour(
    deadline: int | None,
) -> None:
    schedule: dict[str, Any] = {"cron": "0 * * * *"}
    if deadline is not None:
        schedule["startingDeadlineSeconds"] = deadline
    replay = Replay(schedule, created=utc(2026, 1, 1))
    assert replay.passes(utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 3, 0, 30), timedelta(hours=1)) == [
        "sales-202601010100",
        "sales-202601010200",
        "sales-202601010300",
    ]
    replay.edit(suspend=True)
    assert replay.pass_at(utc(2026, 1, 1, 3, 20)) == []
    assert replay.pipeline["status"]["observedSchedule"].endswith("|suspended")
    assert "nextScheduleTime" not in replay.pipeline["status"]
    # No pass at all for 40 days (nothing wakes a suspended schedule), then resume.
    resumed = utc(2026, 2, 10, 3, 20)
    replay.edit(suspend=None)
    assert replay.pass_at(resumed) == []
    assert replay.pipeline["status"]["scheduleActiveSince"] == "2026-02-10T03:20:00Z"
    assert replay.pipeline["status"]["nextScheduleTime"] == "2026-02-10T04:00:00Z"
    # From then on, each hour once.
    made = replay.passes(utc(2026, 2, 10, 4, 0, 5), utc(2026, 2, 10, 7, 0, 5), timedelta(hours=1))
    assert made == ["sales-202602100400", "sales-202602100500", "sales-202602100600", "sales-202602100700"]


@pytest.mark.parametrize(("deadline", "expected"), [(None, ["sales-202602100300"]), (600, [])])
def test_an_operator_down_forty_days_starts_the_newest_time_unless_its_deadline_passed(
    deadline: int | None, expected: list[str]
) -> None:
    schedule: dict[str, Any] = {"cron": "0 * * * *"}
    if deadline is not None:
        schedule["startingDeadlineSeconds"] = deadline
    replay = Replay(schedule, created=utc(2026, 1, 1))
    replay.pass_at(utc(2026, 1, 1, 1, 0, 30))
    assert replay.pass_at(utc(2026, 2, 10, 3, 20)) == expected
    # Either way the schedule is alive: the next hour fires.
    assert replay.pass_at(utc(2026, 2, 10, 4, 0, 30)) == ["sales-202602100400"]


def test_an_every_minute_schedule_with_a_deadline_survives_seventeen_hours_of_suspension() -> None:
    replay = Replay({"cron": "* * * * *", "startingDeadlineSeconds": 30}, created=utc(2026, 1, 1))
    replay.pass_at(utc(2026, 1, 1, 0, 1, 5))
    replay.edit(suspend=True)
    replay.pass_at(utc(2026, 1, 1, 0, 1, 10))
    replay.edit(suspend=False)
    assert replay.pass_at(utc(2026, 1, 1, 17, 1, 10)) == []
    assert replay.pass_at(utc(2026, 1, 1, 17, 2, 5)) == ["sales-202601011702"]


# --- adding, editing, re-adding -------------------------------------------------------


def test_a_schedule_added_to_an_old_pipeline_fires_no_past_time() -> None:
    replay = Replay(None, created=utc(2025, 6, 1))
    replay.pass_at(utc(2026, 1, 1))
    replay.edit(cron="0 * * * *", catchUp=5)
    assert replay.pass_at(utc(2026, 1, 1, 10, 30)) == []
    assert replay.pass_at(utc(2026, 1, 1, 11, 0, 5)) == ["sales-202601011100"]


def test_a_schedule_removed_and_re_added_fires_nothing_from_the_gap() -> None:
    replay = Replay({"cron": "0 * * * *", "catchUp": 5}, created=utc(2026, 1, 1))
    assert replay.pass_at(utc(2026, 1, 1, 1, 0, 5)) == ["sales-202601010100"]
    replay.edit(remove=True)
    replay.pass_at(utc(2026, 1, 1, 1, 30))
    replay.edit(cron="0 * * * *", catchUp=5)
    assert replay.pass_at(utc(2026, 1, 3, 9, 30)) == []
    assert replay.pass_at(utc(2026, 1, 3, 10, 0, 5)) == ["sales-202601031000"]


def test_a_pipeline_created_with_its_schedule_still_fires_a_time_the_operator_missed() -> None:
    # Created at 00:50; the operator first sees it at 01:20 (it was down).
    replay = Replay({"cron": "0 * * * *"}, created=utc(2026, 1, 1, 0, 50))
    assert replay.pass_at(utc(2026, 1, 1, 1, 20)) == ["sales-202601010100"]


# --- names and history ----------------------------------------------------------------


def test_two_pipelines_sharing_a_fifty_character_prefix_both_fire_in_the_same_minute() -> None:
    prefix = "x" * 50
    names = set()
    for suffix in ("-a", "-b"):
        replay = Replay({"cron": "* * * * *"}, created=utc(2026, 1, 1), name=prefix + suffix)
        names |= set(replay.pass_at(utc(2026, 1, 1, 0, 1, 5)))
    assert len(names) == 2
    assert all(len(name) <= 63 for name in names)


def test_history_limits_never_delete_a_run_an_unfinished_rerun_re_runs() -> None:
    replay = Replay({"cron": "0 * * * *", "successfulRunsHistoryLimit": 1}, created=utc(2026, 1, 1))
    replay.pass_at(utc(2026, 1, 1, 1, 0, 5))
    replay.finish_all()
    replay.rerun_sources = frozenset({"sales-202601010100"})
    replay.pass_at(utc(2026, 1, 1, 2, 0, 5))
    replay.finish_all()
    replay.pass_at(utc(2026, 1, 1, 2, 1))
    assert "sales-202601010100" in replay.runs  # kept: beyond the limit, but a rerun needs it
    replay.rerun_sources = frozenset()
    replay.pass_at(utc(2026, 1, 1, 2, 2))
    assert sorted(replay.runs) == ["sales-202601010200"]


def test_a_schedule_broken_then_restored_fires_nothing_from_while_it_was_broken() -> None:
    replay = Replay({"cron": "0 * * * *", "catchUp": 5}, created=utc(2026, 1, 1))
    assert replay.pass_at(utc(2026, 1, 1, 1, 0, 5)) == ["sales-202601010100"]
    replay.edit(cron="61 * * * *")
    replay.pass_at(utc(2026, 1, 1, 1, 10))
    assert replay.pipeline["status"]["observedSchedule"].endswith("|invalid")
    replay.edit(cron="0 * * * *")  # exactly as before
    assert replay.pass_at(utc(2026, 1, 1, 5, 30)) == []
    assert replay.pass_at(utc(2026, 1, 1, 6, 0, 5)) == ["sales-202601010600"]


def test_only_runs_the_pipeline_owns_count_as_its_scheduled_runs() -> None:
    def obj(name: str, owner_uid: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "annotations": {"sluice.dev/scheduled-time": "2026-01-01T01:00:00Z"},
                "ownerReferences": [{"kind": "Pipeline", "name": "sales", "uid": owner_uid}],
            },
            "status": {"phase": "Succeeded"},
        }

    found = own_scheduled_runs([obj("sales-202601010100", "u1"), obj("sales-202601010200", "other")], "u1")
    assert [run.name for run in found] == ["sales-202601010100"]
