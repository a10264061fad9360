"""Cron arithmetic: which scheduled instants are due, and when the next one is (pure).

A cron expression names local wall-clock times in the schedule's IANA time
zone ("0 2 * * *" in Europe/Paris is 02:00 on the clocks in Paris). Each
local time is turned into one instant, so that across DST a day is never
loaded twice nor skipped:

- an ambiguous local time (clocks go back and 02:00 happens twice) is the
  first of its two instants, and fires once;
- a local time that does not exist (clocks jump from 02:00 to 03:00) is the
  instant the jump happens (03:00 new time), and fires once there however
  many of the skipped times the cron names (and once in all if 03:00 itself
  is one of them).

Instants are aware UTC datetimes everywhere outside this module. Scans run
newest first and stop at a time bound, never at a count of ticks, so a
schedule suspended or down for months finds its newest missed times at the
same cost as one down for a minute. Nothing here keeps state: what happened
while the operator was down is recomputed from the Pipeline's status.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from sluice.engine.errors import InvalidPipeline

PRESETS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Two probes this far apart see any one DST change between them (zones change
# offset at most twice a year, and never twice within a day).
PROBE = timedelta(hours=26)
# Cron times fall on whole minutes: a scan starting this far past a moment
# includes a tick at the moment itself.
TICK_MARGIN = timedelta(seconds=1)


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
        try:
            croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
        except Exception:  # croniter's own errors: it found no date in years of search
            raise InvalidPipeline(
                "InvalidSchedule", f'schedule.cron "{cron}" never matches a date (e.g. February 30)'
            ) from None
        return cls(expression, zone)

    def instant(self, local: datetime) -> datetime:
        """The UTC instant a naive local wall-clock time fires at (see the
        module's docstring for ambiguous and skipped times).
        """
        first = local.replace(tzinfo=self.timezone, fold=0)
        moment = first.astimezone(UTC)
        if moment.astimezone(self.timezone).replace(tzinfo=None) == local:
            return moment  # exists (ambiguous ones: fold=0 is the earlier instant)
        # In a gap: fold=1 reads it with the offset after the jump, fold=0 with
        # the one before; the jump lies between the two instants.
        low = local.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        high = moment
        if low > high:
            low, high = high, low
        return self._transition(low, high)

    def _transition(self, low: datetime, high: datetime) -> datetime:
        """The first instant in (low, high] whose UTC offset is the one at
        ``high``: the moment clocks jumped. Offsets change on a whole
        second, so halving the interval down to one second finds it.
        """
        after = high.astimezone(self.timezone).utcoffset()
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            middle = middle.replace(microsecond=0)
            if middle.astimezone(self.timezone).utcoffset() == after:
                high = middle
            else:
                low = middle
        return high

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.timezone).replace(tzinfo=None)

    def newest_first(self, before: datetime) -> Iterator[datetime]:
        """Scheduled instants at or before ``before``, newest first, each once."""
        # After clocks went back, local times up to the size of the step past
        # local(before) are ambiguous ones whose first instant has passed.
        step = (before - PROBE).astimezone(self.timezone).utcoffset()
        now_offset = before.astimezone(self.timezone).utcoffset()
        assert step is not None and now_offset is not None
        fold_back = max(step - now_offset, timedelta(0))
        ticks = croniter(self.cron, self._local(before) + fold_back + TICK_MARGIN)
        last: datetime | None = None
        while True:
            moment = self.instant(ticks.get_prev(datetime))
            if moment > before or (last is not None and moment >= last):
                continue  # not yet due, or a skipped local time already fired at the jump
            last = moment
            yield moment

    def oldest_first(self, after: datetime) -> Iterator[datetime]:
        """Scheduled instants strictly after ``after``, oldest first, each once.
        A local time before local(after) fires no later than ``after`` does,
        so the scan starts there.
        """
        ticks = croniter(self.cron, self._local(after))
        last: datetime | None = None
        while True:
            moment = self.instant(ticks.get_next(datetime))
            if moment <= after or (last is not None and moment <= last):
                continue
            last = moment
            yield moment

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled instant strictly after ``moment``."""
        return next(self.oldest_first(moment))

    def previous_before(self, moment: datetime) -> datetime:
        """The newest scheduled instant strictly before ``moment``: where a
        run scheduled at ``moment`` starts its data interval.
        """
        return next(self.newest_first(moment - timedelta(microseconds=1)))

    def latest_at_or_before(self, moment: datetime) -> datetime:
        return next(self.newest_first(moment))

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every scheduled instant in [start, end], oldest first."""
        found = []
        for moment in self.oldest_first(start - timedelta(microseconds=1)):
            if moment > end:
                break
            found.append(moment)
        return found


def due_times(
    schedule: CronSchedule,
    since: datetime,
    now: datetime,
    catch_up: int = 0,
    starting_deadline_seconds: int | None = None,
) -> list[datetime]:
    """Scheduled instants in (since, now] to start now, oldest first.

    Without catch-up only the newest missed time runs (as a CronJob does);
    with ``catch_up`` N the newest N run. A deadline drops instants older
    than ``now - starting_deadline_seconds``. The scan walks back from
    ``now`` and stops at whichever bound comes first, so its cost does not
    grow with how long ago ``since`` is.
    """
    oldest = since
    if starting_deadline_seconds is not None:
        oldest = max(oldest, now - timedelta(seconds=starting_deadline_seconds) - timedelta(microseconds=1))
    wanted = max(catch_up, 1)
    found: list[datetime] = []
    for moment in schedule.newest_first(now):
        if moment <= oldest or len(found) == wanted:
            break
        found.append(moment)
    return found[::-1]
