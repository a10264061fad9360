"""A run's data interval: the span of data it loads (pure).

Airflow users think of a scheduled load as "the data of the interval that
just ended": a run scheduled at a cron instant loads from the schedule's
previous instant to that one. Times are written in RFC 3339 in the
schedule's time zone (its offset included), as a data team reads dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sluice.api import labels
from sluice.api.v1alpha1 import DataInterval, ScheduleSpec
from sluice.engine.clock import parse_time
from sluice.engine.cron import CronSchedule
from sluice.engine.errors import InvalidPipeline


def in_zone(moment: datetime, cron: CronSchedule) -> str:
    return moment.astimezone(cron.timezone).isoformat(timespec="seconds")


def scheduled_interval(cron: CronSchedule, moment: datetime) -> DataInterval:
    """The interval of the run scheduled at ``moment``."""
    return DataInterval(start=in_zone(cron.previous_before(moment), cron), end=in_zone(moment, cron))


def run_interval(
    given: DataInterval | None, schedule: ScheduleSpec | None, created: str, scheduled_time: str | None = None
) -> DataInterval:
    """The interval a run loads: its own ``spec.dataInterval`` when set (a
    scheduled or backfilled run has one; a run made by hand may); else the
    newest interval of its pipeline's schedule complete when it was created
    (as Airflow infers one for a manual run); else, with no schedule, the
    empty interval at its creation.
    """
    if given is not None:
        return given
    if schedule is not None and schedule.cron:
        try:
            cron = CronSchedule.parse(schedule.cron, schedule.timezone)
        except InvalidPipeline:
            cron = None
        if cron is not None and scheduled_time:
            # Scheduled (by an earlier version, without spec.dataInterval) or
            # annotated by hand: the interval ending at its scheduled time.
            return scheduled_interval(cron, parse_time(scheduled_time))
        if cron is not None:
            return scheduled_interval(cron, cron.latest_at_or_before(parse_time(created)))
    return DataInterval(start=created, end=created)


@dataclass(frozen=True)
class RunTimes:
    """When a run is "for": what $(context.scheduledTime), scheduledDate and
    the data interval say. Frozen in its status when it starts, so a rerun
    can take its source's and load the same data.
    """

    scheduled_time: str
    scheduled_date: str
    data_interval: DataInterval


def run_times(
    annotations: Mapping[str, str], given: DataInterval | None, schedule: ScheduleSpec | None, created: str
) -> RunTimes:
    """A scheduled (or backfilled) run's from its annotations and spec; a run
    made by hand is "scheduled" at its creation.
    """
    return RunTimes(
        annotations.get(labels.SCHEDULED_TIME) or created,
        annotations.get(labels.SCHEDULED_DATE) or created[:10],
        run_interval(given, schedule, created, annotations.get(labels.SCHEDULED_TIME)),
    )
