"""Lease-based leader election, so two replicas never reconcile at once.

Why our own and not kopf's peering: kopf's peering freezes lower-priority
peers but a SIGKILLed peer can block the others for its whole lifetime.
A coordination.k8s.io Lease with a short duration is what Kubernetes'
own controllers use: a crashed leader is replaced within ``lease_seconds``.

The identity defaults to the pod's name (its hostname), so a container
restarted in the same pod takes its lease back at once instead of waiting
for it to expire.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import datetime, timedelta
from typing import Any

from sluice.engine.clock import now, parse_time
from sluice.kube import ApiError, KubeClient

log = logging.getLogger(__name__)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_expired(spec: dict[str, Any], moment: datetime) -> bool:
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    if not renewed:
        return True
    return parse_time(renewed) + timedelta(seconds=spec.get("leaseDurationSeconds") or 0) < moment


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str = "sluice-operator",
        identity: str | None = None,
        lease_seconds: int = 15,
        renew_seconds: float = 5,
    ) -> None:
        self.client = client
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity or socket.gethostname()
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.lost = asyncio.Event()

    def _spec(self, acquired: str | None, transitions: int) -> dict[str, Any]:
        stamp = _stamp(now())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": acquired or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the lease; True while we hold it."""
        lease = await self.client.get_optional(f"{self.path}/{self.name}")
        if lease is None:
            body = {"metadata": {"name": self.name}, "spec": self._spec(None, 0)}
            try:
                await self.client.create(self.path, body)
                return True
            except ApiError as create_error:
                if create_error.conflict:
                    return False
                raise
        spec = lease.get("spec") or {}
        ours = spec.get("holderIdentity") == self.identity
        if not ours and not lease_expired(spec, now()):
            return False
        transitions = (spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        lease["spec"] = self._spec(spec.get("acquireTime") if ours else None, transitions)
        try:
            # The resourceVersion in the body makes this a compare-and-swap.
            await self.client.request("PUT", f"{self.path}/{self.name}", lease)
        except ApiError as error:
            if error.conflict:
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Wait until this process is the leader."""
        announced = False
        while True:
            try:
                if await self.try_acquire():
                    log.info("leader election: %s is the leader", self.identity)
                    return
            except (ApiError, OSError) as error:
                log.warning("leader election: %s", error)
            if not announced:
                log.info("leader election: waiting for the lease held by another replica")
                announced = True
            await asyncio.sleep(self.renew_seconds / 2)

    async def keep(self) -> None:
        """Renew the lease until it cannot be renewed in time; then set ``lost``."""
        deadline = now() + timedelta(seconds=self.lease_seconds)
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                if await self.try_acquire():
                    deadline = now() + timedelta(seconds=self.lease_seconds)
                    continue
                log.error("leader election: lease taken by another replica")
            except (ApiError, OSError) as error:
                log.warning("leader election: renew failed: %s", error)
                if now() < deadline - timedelta(seconds=self.renew_seconds):
                    continue
            self.lost.set()
            return

    async def release(self) -> None:
        """Give the lease up on a clean shutdown, so a standby takes over at once."""
        try:
            lease = await self.client.get(f"{self.path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["renewTime"] = _stamp(now() - timedelta(seconds=self.lease_seconds + 1))
            await self.client.request("PUT", f"{self.path}/{self.name}", lease)
        except (ApiError, OSError) as error:
            log.warning("leader election: could not release the lease: %s", error)
