"""Which data a run loads: scheduled, made by hand, or told."""

from sluice.api.v1alpha1 import DataInterval, ScheduleSpec
from sluice.engine.data_interval import run_interval


def test_a_run_made_by_hand_loads_the_newest_complete_interval_of_its_schedule() -> None:
    daily = ScheduleSpec(cron="0 2 * * *", timezone="Europe/Paris")
    # Created at 15:00 Paris time on 2026-10-25: the newest complete day is
    # the one that ended at 02:00 that morning (the first 02:00; clocks went back).
    assert run_interval(None, daily, "2026-10-25T14:00:00Z") == DataInterval(
        start="2026-10-24T02:00:00+02:00", end="2026-10-25T02:00:00+02:00"
    )
    # Created exactly at a scheduled instant: that instant ends the interval.
    assert run_interval(None, daily, "2026-10-26T01:00:00Z").end == "2026-10-26T02:00:00+01:00"


def test_a_run_of_a_pipeline_without_a_schedule_loads_the_empty_interval_at_its_creation() -> None:
    assert run_interval(None, None, "2026-01-02T03:04:05Z") == DataInterval(
        start="2026-01-02T03:04:05Z", end="2026-01-02T03:04:05Z"
    )


def test_a_runs_own_interval_wins() -> None:
    given = DataInterval(start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z")
    assert run_interval(given, ScheduleSpec(cron="@daily"), "2026-06-01T00:00:00Z") == given


def test_a_run_with_a_scheduled_time_but_no_interval_loads_the_interval_ending_then() -> None:
    # Runs an earlier version scheduled carry the annotation but no spec.dataInterval.
    hourly = ScheduleSpec(cron="0 * * * *")
    created_together = "2026-01-01T12:00:05Z"
    assert run_interval(None, hourly, created_together, "2026-01-01T10:00:00Z") == DataInterval(
        start="2026-01-01T09:00:00+00:00", end="2026-01-01T10:00:00+00:00"
    )
