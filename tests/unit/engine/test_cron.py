from datetime import UTC, datetime, timedelta

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


# --- DST: one run per local scheduled time --------------------------------------------


def local_times(schedule: CronSchedule, start: datetime, end: datetime) -> list[str]:
    return [m.astimezone(schedule.timezone).isoformat() for m in schedule.between(start, end)]


@pytest.mark.parametrize(
    ("zone", "cron", "first_instant"),
    [
        # The README's own example: 02:00 happens twice in Paris on
        # 2026-10-25, first at UTC+2 (00:00 UTC), then at UTC+1.
        ("Europe/Paris", "0 2 * * *", utc(2026, 10, 25, 0, 0)),
        # 01:30 happens twice in New York on 2026-11-01 (EDT, then EST).
        ("America/New_York", "30 1 * * *", utc(2026, 11, 1, 5, 30)),
    ],
)
def test_an_ambiguous_local_time_fires_once_at_its_first_instant(
    zone: str, cron: str, first_instant: datetime
) -> None:
    schedule = CronSchedule.parse(cron, zone)
    fired = schedule.between(
        first_instant - timedelta(days=2, hours=1), first_instant + timedelta(days=2, hours=2)
    )
    dates = [m.astimezone(schedule.timezone).date() for m in fired]
    assert len(fired) == 5 and len(set(dates)) == 5  # five days, each date once
    assert [
        m
        for m in fired
        if m.astimezone(schedule.timezone).date() == first_instant.astimezone(schedule.timezone).date()
    ] == [first_instant]


@pytest.mark.parametrize(
    ("zone", "cron", "day", "expected_local"),
    [
        # 02:30 does not exist in Paris on 2026-03-29 (02:00 -> 03:00).
        ("Europe/Paris", "30 2 * * *", utc(2026, 3, 29), "2026-03-29T03:00:00+02:00"),
        # Nor in New York on 2026-03-08.
        ("America/New_York", "30 2 * * *", utc(2026, 3, 8, 12), "2026-03-08T03:00:00-04:00"),
    ],
)
def test_a_skipped_local_time_fires_once_when_the_clocks_jump(
    zone: str, cron: str, day: datetime, expected_local: str
) -> None:
    schedule = CronSchedule.parse(cron, zone)
    fired = local_times(schedule, day - timedelta(days=2), day + timedelta(days=2))
    assert expected_local in fired
    assert len(fired) == 4 or len(fired) == 5
    assert len({t[:10] for t in fired}) == len(fired)  # every date once


def test_several_skipped_times_and_the_jumps_own_time_fire_once_together() -> None:
    # Every 15 minutes: 02:00, 02:15, 02:30 and 02:45 do not exist in Paris
    # on 2026-03-29, and 03:00 does: one run at 03:00, not five.
    schedule = CronSchedule.parse("*/15 * * * *", "Europe/Paris")
    fired = local_times(schedule, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 15))
    assert fired == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
    ]


def test_the_repeated_hour_fires_in_its_first_pass_only() -> None:
    schedule = CronSchedule.parse("*/30 * * * *", "Europe/Paris")
    fired = local_times(schedule, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30))
    assert fired == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:30:00+01:00",
    ]


def test_scans_back_and_forth_agree_across_both_changes() -> None:
    for zone in ("Europe/Paris", "America/New_York", "Australia/Lord_Howe"):
        schedule = CronSchedule.parse("*/10 * * * *", zone)
        for start in (
            utc(2026, 3, 7),
            utc(2026, 3, 27),
            utc(2026, 10, 2),
            utc(2026, 10, 23),
            utc(2026, 10, 31),
        ):
            end = start + timedelta(days=3)
            forward = schedule.between(start, end)
            backward = due_times(schedule, start - timedelta(microseconds=1), end, catch_up=10_000)
            assert forward == backward, zone
            assert forward == sorted(set(forward))


def test_a_run_scheduled_in_the_repeated_hour_is_due_after_it() -> None:
    # now is in the second pass of 02:xx (UTC+1); 02:45's first pass (00:45
    # UTC) has gone by and is due, while the second pass never is.
    schedule = CronSchedule.parse("45 2 * * *", "Europe/Paris")
    assert due_times(schedule, utc(2026, 10, 24, 12), utc(2026, 10, 25, 1, 50)) == [utc(2026, 10, 25, 0, 45)]
    # Also while the clocks still read before 02:45 (01:30 UTC is 02:30 UTC+1):
    # the first 02:45 has passed even though the local clock has not reached it again.
    assert due_times(schedule, utc(2026, 10, 24, 12), utc(2026, 10, 25, 1, 30)) == [utc(2026, 10, 25, 0, 45)]


# --- long gaps: bounded by time, not by ticks -----------------------------------------


def test_a_forty_day_gap_of_an_hourly_schedule_finds_its_newest_times() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    now = utc(2026, 11, 26, 12, 10)
    since = now - timedelta(days=40)
    assert due_times(schedule, since, now) == [utc(2026, 11, 26, 12, 0)]
    assert due_times(schedule, since, now, catch_up=3) == [
        utc(2026, 11, 26, 10, 0),
        utc(2026, 11, 26, 11, 0),
        utc(2026, 11, 26, 12, 0),
    ]
    assert due_times(schedule, since, now, starting_deadline_seconds=900) == [utc(2026, 11, 26, 12, 0)]
    assert due_times(schedule, since, now, starting_deadline_seconds=300) == []


def test_a_seventeen_hour_gap_of_an_every_minute_schedule_with_a_deadline() -> None:
    schedule = CronSchedule.parse("* * * * *")
    now = utc(2026, 11, 26, 12, 0, 30)
    due = due_times(schedule, now - timedelta(hours=17), now, starting_deadline_seconds=120)
    assert due == [utc(2026, 11, 26, 12, 0)]


def test_a_cron_that_never_matches_is_refused() -> None:
    with pytest.raises(InvalidPipeline, match="never matches"):
        CronSchedule.parse("0 0 30 2 *")


def test_previous_and_next_instants() -> None:
    schedule = CronSchedule.parse("0 2 * * *", "Europe/Paris")
    assert schedule.previous_before(utc(2026, 10, 26, 1, 0)) == utc(2026, 10, 25, 0, 0)
    assert schedule.previous_before(utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 24, 0, 0)
    assert schedule.next_after(utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 26, 1, 0)
