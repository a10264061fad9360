"""Leader election's guarantees, on an in-memory lease with the API's
compare-and-swap semantics (the integration tests run it on a real API
server, with the server restarted and a replica's traffic black-holed).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any, cast

import pytest

from sluice.kube import ApiError, KubeClient
from sluice.leader import LeaderElector, LeaseClock


class Leases:
    """One Lease object, shared by the replicas' fake clients."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.stored = asyncio.Event()  # set by each successful write
        self.taken_at: dict[str, float] = {}  # holder -> when the lease first named it


class FakeClient:
    """get/create/PUT on a Lease, with resourceVersion preconditions. With
    ``hang`` set, every call waits forever (a black-holed connection).
    """

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.hang = False

    async def _maybe_hang(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    async def get_optional(self, path: str) -> dict[str, Any] | None:
        await self._maybe_hang()
        return copy.deepcopy(self.leases.lease)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._maybe_hang()
        if self.leases.lease is not None:
            raise ApiError(409, "AlreadyExists", "exists")
        return self._store(body)

    async def request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._maybe_hang()
        assert method == "PUT" and self.leases.lease is not None
        if body["metadata"]["resourceVersion"] != self.leases.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.leases.version += 1
        holder = body["spec"].get("holderIdentity")
        if self.leases.lease is None or self.leases.lease["spec"].get("holderIdentity") != holder:
            self.leases.taken_at.setdefault(holder, time.monotonic())
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.leases.version)
        self.leases.lease = stored
        self.leases.stored.set()
        return copy.deepcopy(stored)


def elector(
    leases: Leases, identity: str, lease: float = 3.0, renew: float = 1.0
) -> tuple[LeaderElector, FakeClient]:
    client = FakeClient(leases)
    return LeaderElector(
        cast(KubeClient, client), "ns", identity=identity, lease_seconds=lease, renew_seconds=renew
    ), client


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expiry_is_judged_by_when_the_record_last_changed_here_never_by_its_renew_time() -> None:
    clock = ManualClock()
    seen = LeaseClock(15, clock)
    # A leader whose clock is a day behind: its renewTime looks ancient,
    # but the record keeps changing, so the lease is alive.
    for renewal in range(5):
        seen.observe({"holderIdentity": "a", "renewTime": f"2026-11-25T10:00:0{renewal}Z"})
        clock.now += 5
        assert seen.held_by_other({"holderIdentity": "a"}, "b")
    # A leader whose clock is a day ahead and that stopped renewing: its
    # renewTime looks like the future, yet 15 s without a change expire it.
    seen.observe({"holderIdentity": "a", "renewTime": "2026-11-27T10:00:00Z"})
    clock.now += 14.9
    assert seen.held_by_other({"holderIdentity": "a"}, "b")
    clock.now += 0.2
    assert not seen.held_by_other({"holderIdentity": "a"}, "b")
    # Released (no holder) or our own: never "held by another".
    assert not seen.held_by_other({"holderIdentity": ""}, "b")
    assert not seen.held_by_other({"holderIdentity": "b"}, "b")


def test_settings_that_would_let_the_fence_pass_the_lease_are_refused() -> None:
    with pytest.raises(ValueError, match="renew_seconds"):
        elector(Leases(), "a", lease=5, renew=5)


def test_a_leader_cut_off_stops_at_its_fence_before_a_follower_may_take_over() -> None:
    asyncio.run(_a_leader_cut_off_stops_at_its_fence_before_a_follower_may_take_over())


async def cut_off(
    follower_lease: float = 3.0, follower_renew: float = 1.0
) -> tuple[LeaderElector, LeaderElector, Leases]:
    """A leader (lease 3 s, renew 1 s) whose every call hangs from now on,
    the renewal in flight included, and a follower waiting for its lease;
    returns once the leader stopped and the follower leads.
    """
    leases = Leases()
    leader, leader_client = elector(leases, "a")
    follower, _ = elector(leases, "b", lease=follower_lease, renew=follower_renew)
    await leader.acquire()
    keeping = asyncio.create_task(leader.keep())
    following = asyncio.create_task(follower.acquire())
    await asyncio.sleep(0)
    leader_client.hang = True
    await asyncio.wait_for(leader.lost.wait(), 10)
    await asyncio.wait_for(following, 10)
    await asyncio.wait_for(keeping, 1)
    return leader, follower, leases


async def _a_leader_cut_off_stops_at_its_fence_before_a_follower_may_take_over() -> None:
    leader, follower, leases = await cut_off()
    assert not leader.leading and not leader.healthy()
    assert leader.lost_at is not None and leader.lost_at <= leader.fence_at + 0.5  # cut off at the fence
    assert follower.leading and leases.lease is not None and leases.lease["spec"]["holderIdentity"] == "b"
    # The moment the lease first named the follower, compared with the moment
    # the leader stopped: never the other way round.
    assert leader.lost_at < leases.taken_at["b"]


def test_a_renewal_error_of_any_kind_is_retried_and_never_ends_the_loop() -> None:
    asyncio.run(_a_renewal_error_of_any_kind_is_retried_and_never_ends_the_loop())


async def _a_renewal_error_of_any_kind_is_retried_and_never_ends_the_loop() -> None:
    leases = Leases()
    leader, client = elector(leases, "a", lease=3.0, renew=0.5)
    await leader.acquire()
    failures = [
        ApiError(500, "InternalError", "etcd leader changed"),
        ValueError("bad JSON"),
        OSError("reset"),
    ]

    real_get = client.get_optional
    retried = asyncio.Event()

    async def flaky_get(path: str) -> dict[str, Any] | None:
        if failures:
            raise failures.pop(0)
        retried.set()  # the first call after all three failures
        return await real_get(path)

    client.get_optional = flaky_get  # type: ignore[method-assign]
    version = leases.version
    leases.stored.clear()
    keeping = asyncio.create_task(leader.keep())
    await asyncio.wait_for(retried.wait(), 10)
    await asyncio.wait_for(leases.stored.wait(), 10)
    assert leases.version > version and leader.leading and not leader.lost.is_set()
    keeping.cancel()


def test_a_follower_with_a_shorter_lease_waits_for_the_one_the_leader_wrote() -> None:
    # During an upgrade that shortens the lease, the old leader still fences
    # by its own, longer one: the new follower must wait as long.
    asyncio.run(_a_follower_with_a_shorter_lease_waits())


async def _a_follower_with_a_shorter_lease_waits() -> None:
    leader, follower, leases = await cut_off(follower_lease=1.0, follower_renew=0.5)
    assert follower.leading
    assert leader.lost_at is not None and leader.lost_at < leases.taken_at["b"]
