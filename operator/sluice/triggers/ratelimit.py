"""Runs a pipeline's events may start per minute: a sliding window.

Kept in this process: with one replica (the chart's default) it is exact;
with N replicas behind the Service each counts its own, so a pipeline may
get up to N times its limit. The limit protects the cluster from a
sender's burst, where that bound is what matters.
"""

from __future__ import annotations

from collections import deque

WINDOW_SECONDS = 60.0


class SlidingWindow:
    def __init__(self) -> None:
        self.started: dict[str, deque[float]] = {}

    def wait_needed(self, key: str, limit: int | None, now: float) -> float:
        """Seconds until one more start is allowed (0: now)."""
        if limit is None:
            return 0.0
        times = self.started.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        if len(times) < limit:
            return 0.0
        return times[-limit] + WINDOW_SECONDS - now

    def record(self, key: str, now: float) -> None:
        self.started.setdefault(key, deque()).append(now)

    def forget(self, key: str, now: float) -> None:
        """Drop a start that did not happen (its create failed), even when
        other starts were recorded after it meanwhile.
        """
        times = self.started.get(key)
        if times and now in times:
            times.remove(now)
