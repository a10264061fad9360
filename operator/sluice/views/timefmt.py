"""Times as people read them: timestamps parsed leniently, durations and
ages printed short, the way kubectl prints its AGE column.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from an object's status, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_duration(seconds: float) -> str:
    """A task's or run's duration: ``0.4s``, ``12s``, ``3m05s``, ``2h07m``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def format_age(seconds: float) -> str:
    """How long ago, as kubectl's AGE column says it (``45s``, ``5m``, ``3h2m``, ``4d``)."""
    whole = max(int(seconds), 0)
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    # (shown below this many seconds, as this) from the finest to the coarsest
    steps: list[tuple[float, str]] = [
        (120, f"{whole}s"),
        (600, f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"),
        (3 * 3600, f"{minutes}m"),
        (8 * 3600, f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"),
        (48 * 3600, f"{hours}h"),
        (8 * 86400, f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"),
    ]
    return next((text for limit, text in steps if whole < limit), f"{days}d")
