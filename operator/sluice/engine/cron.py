"""Cron arithmetic: which scheduled times are due, and when the next one is (pure).

Times are computed in the schedule's IANA timezone (so "0 2 * * *" in
Europe/Paris is 02:00 local, across DST changes) and handled as aware UTC
datetimes everywhere else. Whatever happened while the operator was down is
recomputed from ``last`` (the Pipeline's status.lastScheduleTime): there is no
in-memory timer state to lose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from sluice.engine.errors import InvalidPipeline

# Looking further back than this many missed times means the schedule was
# down for a very long time; only the newest ones can matter.
MAX_SCAN = 1000
PRESETS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class CronSchedule:
    cron: str
    timezone: ZoneInfo

    @classmethod
    def parse(cls, cron: str, timezone: str = "UTC") -> CronSchedule:
        """Validate; raise InvalidPipeline with a message naming the problem."""
        expression = PRESETS.get(cron.strip(), cron.strip())
        if len(expression.split()) != 5 or not croniter.is_valid(expression):
            raise InvalidPipeline(
                "InvalidSchedule",
                f'schedule.cron "{cron}" is not a 5-field cron expression or one of {", ".join(PRESETS)}',
            )
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidPipeline(
                "InvalidSchedule", f'schedule.timezone "{timezone}" is not an IANA time zone'
            ) from None
        return cls(expression, zone)

    def times_after(self, start: datetime) -> croniter:
        return croniter(self.cron, start.astimezone(self.timezone))

    def next_after(self, moment: datetime) -> datetime:
        value: datetime = self.times_after(moment).get_next(datetime)
        return value.astimezone(UTC)


def due_times(
    schedule: CronSchedule,
    last: datetime,
    now: datetime,
    catch_up: int = 0,
    starting_deadline_seconds: int | None = None,
) -> list[datetime]:
    """Scheduled times in (last, now] to start now, oldest first.

    Without catch-up only the newest missed time runs (as a CronJob does);
    with ``catch_up`` N the newest N run. A deadline drops times that are
    older than ``now - starting_deadline_seconds``.
    """
    missed: list[datetime] = []
    times = schedule.times_after(last)
    for _ in range(MAX_SCAN):
        moment: datetime = times.get_next(datetime).astimezone(UTC)
        if moment > now:
            break
        missed.append(moment)
        if len(missed) > max(catch_up, 1):
            missed.pop(0)
    if starting_deadline_seconds is not None:
        oldest = now - timedelta(seconds=starting_deadline_seconds)
        missed = [m for m in missed if m >= oldest]
    return missed[-max(catch_up, 1) :]
