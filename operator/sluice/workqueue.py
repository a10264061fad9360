"""A coalescing work queue of run keys.

Why: a run with 50 finishing Jobs receives 50+ events; reconciling it once per
event wastes API calls and delays other runs. Keys are de-duplicated while
queued, a key is never processed by two workers at once, and a key added
while it is being processed is processed once more afterwards (so no event is
lost). This is the client-go workqueue contract, on asyncio.

Two lanes: "urgent" keys (a task pod changed: a run in flight has a DAG edge
to take) are handed out before the others (a run just created, a timer).
Under a burst of new runs, the runs already going keep their step latency
instead of queueing behind every admission.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._urgent: deque[K] = deque()
        self._normal: deque[K] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._dirty_urgent: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K, urgent: bool = False) -> None:
        """Queue ``key`` once; an urgent add moves a queued key up the line."""
        if key in self._processing:
            self._dirty.add(key)
            if urgent:
                self._dirty_urgent.add(key)
            return
        if key in self._queued:
            if urgent and key in self._normal:
                self._normal.remove(key)
                self._urgent.append(key)
            return
        self._queued.add(key)
        (self._urgent if urgent else self._normal).append(key)
        self._wake()

    def _wake(self) -> None:
        """Hand the new key's turn to one idle worker, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds; an earlier pending timer wins."""
        if delay <= 0:
            self.add(key)
            return
        existing = self._timers.get(key)
        loop = asyncio.get_running_loop()
        if existing is not None and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    async def get(self) -> K:
        while not (self._urgent or self._normal):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the turn on rather than lose it
                raise
        key = self._urgent.popleft() if self._urgent else self._normal.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            urgent = key in self._dirty_urgent
            self._dirty_urgent.discard(key)
            self.add(key, urgent)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._normal)
