"""A run's data interval: the span of data it loads (pure).

Airflow users think of a scheduled load as "the data of the interval that
just ended": a run scheduled at a cron instant loads from the schedule's
previous instant to that one. Times are written in RFC 3339 in the
schedule's time zone (its offset included), as a data team reads dates.
"""

from __future__ import annotations

from datetime import datetime

from sluice.api.v1alpha1 import DataInterval, ScheduleSpec
from sluice.engine.clock import parse_time
from sluice.engine.cron import CronSchedule
from sluice.engine.errors import InvalidPipeline


def in_zone(moment: datetime, cron: CronSchedule) -> str:
    return moment.astimezone(cron.timezone).isoformat(timespec="seconds")


def scheduled_interval(cron: CronSchedule, moment: datetime) -> DataInterval:
    """The interval of the run scheduled at ``moment``."""
    return DataInterval(start=in_zone(cron.previous_before(moment), cron), end=in_zone(moment, cron))


def run_interval(given: DataInterval | None, schedule: ScheduleSpec | None, created: str) -> DataInterval:
    """The interval a run loads: its own ``spec.dataInterval`` when set (a
    scheduled or backfilled run has one; a run made by hand may); else the
    newest interval of its pipeline's schedule complete when it was created
    (as Airflow infers one for a manual run); else, with no schedule, the
    empty interval at its creation.
    """
    if given is not None:
        return given
    if schedule is not None:
        try:
            cron = CronSchedule.parse(schedule.cron, schedule.timezone)
        except InvalidPipeline:
            cron = None
        if cron is not None:
            return scheduled_interval(cron, cron.latest_at_or_before(parse_time(created)))
    return DataInterval(start=created, end=created)
