"""Lease-based leader election, so two replicas never reconcile at once.

Why our own and not kopf's peering: kopf's peering freezes lower-priority
peers but a SIGKILLed peer can block the others for its whole lifetime.
A coordination.k8s.io Lease with a short duration is what Kubernetes'
own controllers use, and this follows client-go's leaderelection rules:

* Time is local and monotonic. A follower judges a lease expired when the
  lease record has not changed for ``lease_seconds`` *since it saw it
  change*; it never compares another host's ``renewTime`` with its own
  clock (clocks differ, and a skewed one would split the brain).
* The leader fences itself. Every renewal (a compare-and-swap on the
  lease's resourceVersion) is counted from the moment it was sent; if no
  renewal succeeds within ``renew_deadline`` of that (shorter than the
  lease, by ``renew_seconds``), the leader stops reconciling and cancels
  its in-flight work before any follower may take over. A renewal that
  hangs is cut off at the fence: no request may outlive it.
* Nothing kills the loops silently: every error (HTTP, disconnects,
  truncated or malformed answers, timeouts) is a failed attempt, logged
  and retried; ``healthy`` says whether this replica can lead or follow,
  and /healthz reports it.

The identity defaults to the pod's name (its hostname), so a container
restarted in the same pod takes its lease back at once instead of waiting
for it to expire.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sluice.engine.clock import now
from sluice.kube import ApiError, KubeClient

log = logging.getLogger(__name__)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(spec: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies one version of the lease's holder record."""
    return (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))


@dataclass
class LeaseClock:
    """When this replica last saw the lease record change, on its own
    monotonic clock: the only time a follower may judge expiry by.
    """

    lease_seconds: float
    monotonic: Callable[[], float] = time.monotonic
    record: tuple[Any, ...] | None = None
    seen_at: float = field(default=0.0)

    def observe(self, spec: dict[str, Any]) -> None:
        record = _record(spec)
        if record != self.record:
            self.record = record
            self.seen_at = self.monotonic()

    def held_by_other(self, spec: dict[str, Any], identity: str) -> bool:
        """Another replica's lease that has changed within the lease time:
        the longer of ours and the one its holder wrote (during an upgrade
        that shortens the lease, the old leader fences by its own, longer one).
        """
        holder = spec.get("holderIdentity")
        if not holder or holder == identity:
            return False
        duration = max(self.lease_seconds, float(spec.get("leaseDurationSeconds") or 0))
        return self.monotonic() - self.seen_at < duration


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str = "sluice-operator",
        identity: str | None = None,
        lease_seconds: float = 15,
        renew_seconds: float = 5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError(
                f"renew_seconds ({renew_seconds}) must be > 0 and < lease_seconds ({lease_seconds})"
            )
        self.client = client
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity or socket.gethostname()
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        # Renewals every renew_seconds; a failed one is retried this often.
        self.retry_seconds = max(0.2, renew_seconds / 5)
        # The leader stops this long after the last renewal it sent that
        # succeeded; a follower takes over no earlier than lease_seconds
        # after it saw that renewal, which came later than it was sent.
        self.renew_deadline = lease_seconds - renew_seconds
        self.monotonic = monotonic
        self.clock = LeaseClock(lease_seconds, monotonic)
        self.lost = asyncio.Event()
        self.lost_at: float | None = None
        self.leading = False
        self.fence_at = 0.0  # monotonic: leading ends here unless renewed
        self.last_contact = monotonic()  # the last time the API server answered about the lease

    # --- one attempt ------------------------------------------------------------------

    def _spec(self, acquired: str | None, transitions: int) -> dict[str, Any]:
        stamp = _stamp(now())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_seconds),
            "acquireTime": acquired or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the lease; True when this replica
        holds it as of the moment the attempt was sent (then the fence moves).
        """
        sent = self.monotonic()
        lease = await self.client.get_optional(f"{self.path}/{self.name}")
        self.last_contact = self.monotonic()
        if lease is None:
            body = {"metadata": {"name": self.name}, "spec": self._spec(None, 0)}
            try:
                created = await self.client.create(self.path, body)
            except ApiError as error:
                if error.conflict:
                    return False
                raise
            return self._took(created, sent)
        spec = lease.get("spec") or {}
        self.clock.observe(spec)
        ours = spec.get("holderIdentity") == self.identity
        if self.clock.held_by_other(spec, self.identity):
            return False
        transitions = (spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        lease["spec"] = self._spec(spec.get("acquireTime") if ours else None, transitions)
        try:
            # The resourceVersion in the body makes this a compare-and-swap.
            written = await self.client.request("PUT", f"{self.path}/{self.name}", lease)
        except ApiError as error:
            if error.conflict:
                return False
            raise
        return self._took(written, sent)

    def _took(self, lease: dict[str, Any], sent: float) -> bool:
        self.last_contact = self.monotonic()
        self.clock.observe(lease.get("spec") or {})
        self.fence_at = sent + self.renew_deadline
        return True

    async def _attempt(self, limit: float | None) -> bool:
        """``try_acquire`` bounded by ``limit`` seconds; any failure is False."""
        try:
            if limit is None:
                return await self.try_acquire()
            return await asyncio.wait_for(self.try_acquire(), max(0.0, limit))
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.warning("leader election: the lease call took too long")
        except Exception as error:  # disconnects, bad payloads, bad JSON: all mean "not now"
            log.warning("leader election: %s: %s", type(error).__name__, error)
        return False

    # --- the loops --------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until this replica is the leader."""
        announced = False
        while True:
            if await self._attempt(self.renew_seconds):
                self.leading = True
                log.info("leader election: %s is the leader", self.identity)
                return
            if not announced:
                log.info("leader election: waiting for the lease held by another replica")
                announced = True
            await asyncio.sleep(self.retry_seconds)

    async def keep(self) -> None:
        """Renew until a renewal cannot succeed before the fence; then set
        ``lost`` at the fence at the latest (never after it).
        """
        next_renewal = self.monotonic() + self.renew_seconds
        while True:
            await asyncio.sleep(max(0.0, min(next_renewal, self.fence_at) - self.monotonic()))
            left = self.fence_at - self.monotonic()
            if left <= 0:
                break
            if await self._attempt(left):
                next_renewal = self.monotonic() + self.renew_seconds
                continue
            if self.fence_at - self.monotonic() <= 0:
                break
            holder = (self.clock.record or (None,))[0]
            if holder not in (None, "", self.identity):
                log.error("leader election: lease taken by %s", holder)
                break
            next_renewal = self.monotonic() + self.retry_seconds
        self.leading = False
        self.lost_at = self.monotonic()
        self.lost.set()

    def healthy(self) -> bool:
        """Leading and renewing, or following with the lease in view: a
        replica cut off from the API server for a lease time is neither.
        """
        if self.lost.is_set():
            return False
        if self.leading:
            return self.monotonic() < self.fence_at
        return self.monotonic() - self.last_contact < 2 * self.lease_seconds

    async def release(self) -> None:
        """Give the lease up on a clean shutdown, so a standby takes over at once."""
        try:
            lease = await asyncio.wait_for(self.client.get(f"{self.path}/{self.name}"), self.renew_seconds)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["renewTime"] = _stamp(now() - timedelta(seconds=self.lease_seconds + 1))
            await asyncio.wait_for(
                self.client.request("PUT", f"{self.path}/{self.name}", lease), self.renew_seconds
            )
        except Exception as error:
            log.warning("leader election: could not release the lease: %s", error)
