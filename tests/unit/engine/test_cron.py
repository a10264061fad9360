from datetime import UTC, datetime

import pytest

from sluice.engine.cron import CronSchedule, due_times
from sluice.engine.errors import InvalidPipeline


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_presets_and_five_field_expressions_parse() -> None:
    assert CronSchedule.parse("@daily").cron == "0 0 * * *"
    assert CronSchedule.parse("*/5 * * * *").cron == "*/5 * * * *"


@pytest.mark.parametrize("cron", ["", "* * * *", "61 * * * *", "@fortnightly", "0 0 * * * *"])
def test_invalid_cron_is_named(cron: str) -> None:
    with pytest.raises(InvalidPipeline) as error:
        CronSchedule.parse(cron)
    assert error.value.reason == "InvalidSchedule"
    assert f'"{cron}"' in error.value.message


def test_invalid_timezone_is_named() -> None:
    with pytest.raises(InvalidPipeline) as error:
        CronSchedule.parse("@daily", "Mars/Olympus")
    assert "Mars/Olympus" in error.value.message


def test_nothing_due_before_the_next_time() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    assert due_times(schedule, utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 59)) == []


def test_only_the_newest_missed_time_runs_without_catch_up() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    due = due_times(schedule, utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 5, 30))
    assert due == [utc(2026, 1, 1, 5, 0)]


def test_catch_up_runs_the_newest_n_missed_times_oldest_first() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    due = due_times(schedule, utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 5, 30), catch_up=3)
    assert due == [utc(2026, 1, 1, 3, 0), utc(2026, 1, 1, 4, 0), utc(2026, 1, 1, 5, 0)]


def test_starting_deadline_drops_times_that_are_too_old() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    now = utc(2026, 1, 1, 5, 30)
    assert due_times(schedule, utc(2026, 1, 1, 0, 0), now, catch_up=3, starting_deadline_seconds=3600) == [
        utc(2026, 1, 1, 5, 0)
    ]
    assert due_times(schedule, utc(2026, 1, 1, 0, 0), now, starting_deadline_seconds=60) == []


def test_timezone_is_honoured_across_dst() -> None:
    # Paris moves from CET (UTC+1) to CEST (UTC+2) at 02:00 on 2026-03-29, so
    # 01:30 local is 00:30 UTC up to that night and 23:30 UTC the day before after it.
    schedule = CronSchedule.parse("30 1 * * *", "Europe/Paris")
    due = due_times(schedule, utc(2026, 3, 27, 12, 0), utc(2026, 3, 31, 12, 0), catch_up=5)
    assert due == [
        utc(2026, 3, 28, 0, 30),
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 23, 30),
        utc(2026, 3, 30, 23, 30),
    ]


def test_next_after() -> None:
    assert CronSchedule.parse("@daily").next_after(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 2, 0, 0)
