"""Time as the Kubernetes API writes it: RFC 3339 in UTC, second precision.

One place for formatting and parsing, so status fields, Events, schedules and
leases cannot disagree about the format.
"""

from __future__ import annotations

from datetime import UTC, datetime

# A pass that waits for a moment (a retry's backoff, a timeout, a scheduled
# time) wakes this long after it, so the moment has surely passed.
WAKE_MARGIN_SECONDS = 0.05


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(now())


def parse_time(value: str) -> datetime:
    """An API timestamp (with or without fractional seconds) as an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
