"""A coalescing work queue of run keys.

Why: a run with 50 finishing task pods receives 50+ events; reconciling it
once per event wastes API calls and delays other runs. Keys are de-duplicated
while queued, a key is never processed by two workers at once, and a key
added while it is being processed is processed once more afterwards (so no
event is lost). This is the client-go workqueue contract, on asyncio.

Three lanes, served in order: URGENT (a task pod of a run in flight changed:
it has a DAG edge to take), NORMAL (a run created or changed, a timer), IDLE
(finished runs: time to live, leftovers). Under a burst of new runs, the runs
already going keep their step latency instead of queueing behind every
admission; after a restart, thousands of finished runs wait behind the live
ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

URGENT, NORMAL, IDLE = 0, 1, 2


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        # Lanes may hold stale entries (a key moved up a lane): the key's
        # current lane is the one in ``_lane``; stale entries are skipped.
        self._lanes: tuple[deque[K], ...] = (deque(), deque(), deque())
        self._lane: dict[K, int] = {}  # queued key -> its lane
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._processing: set[K] = set()
        self._dirty: dict[K, int] = {}  # added while processing -> best lane asked
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K, lane: int = NORMAL) -> None:
        """Queue ``key`` once; adding it to a better lane moves it up."""
        if key in self._processing:
            self._dirty[key] = min(lane, self._dirty.get(key, lane))
            return
        held = self._lane.get(key)
        if held is not None and held <= lane:
            return
        self._lane[key] = lane
        self._lanes[lane].append(key)
        if held is None:
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

    def _pop(self) -> K | None:
        for number, lane in enumerate(self._lanes):
            while lane:
                key = lane.popleft()
                if self._lane.get(key) == number:
                    del self._lane[key]
                    return key
        return None

    async def get(self) -> K:
        while (key := self._pop()) is None:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the turn on rather than lose it
                raise
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        lane = self._dirty.pop(key, None)
        if lane is not None:
            self.add(key, lane)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return len(self._lane)
