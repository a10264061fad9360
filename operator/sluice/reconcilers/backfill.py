"""The Backfill reconciler: observe → plan → act → write → announce.

What to do is ``engine.backfill_plan.plan_backfill``'s decision; this module
reads the Backfill and its Pipeline, takes the pipeline's runs from the
operator's run index (no LIST per pass), creates and cancels runs, and
writes the status. Each run it creates is put in the index at once, so the
next pass counts it against ``maxConcurrent`` even before its watch event
arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sluice import metrics
from sluice.api import labels
from sluice.engine.backfill_plan import BackfillFacts, BackfillPlan, plan_backfill, status_patch
from sluice.engine.clock import now, rfc3339
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient, NameTaken, backfill_path, pipeline_path, run_path
from sluice.reconcilers.keys import BackfillKey, OwnWrites
from sluice.reconcilers.peers import PeerIndex
from sluice.reconcilers.refusals import clear_blocked, show_refusal_on


class BackfillReconciler:
    def __init__(
        self,
        client: KubeClient,
        events: EventRecorder,
        writes: OwnWrites,
        peers: PeerIndex,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.client = client
        self.events = events
        self.writes = writes
        self.peers = peers
        self.clock = clock

    async def reconcile(self, key: BackfillKey) -> float | None:
        backfill = await self.client.get_optional(backfill_path(key.namespace, key.name))
        if backfill is None:
            return None
        ref = ((backfill.get("spec") or {}).get("pipelineRef") or {}).get("name", "")
        pipeline = await self.client.get_optional(pipeline_path(key.namespace, ref)) if ref else None
        if pipeline is not None and pipeline["metadata"].get("deletionTimestamp"):
            pipeline = None  # being deleted, its runs with it: nothing more to create under it
        runs = tuple(run for run in self.peers.of(key.namespace) if run.pipeline == ref)
        plan = plan_backfill(BackfillFacts(backfill, pipeline, runs, self.clock()))
        await self._act(backfill, plan)
        path = backfill_path(key.namespace, key.name, "status")
        if plan.status is not None:
            backfill = await self.client.merge_patch(path, status_patch(backfill, plan.status))
            self.writes.note(key, backfill)
        for announcement in plan.events:
            await self.events.announce(backfill, announcement)
        cleared = await clear_blocked(self.client, backfill, path, rfc3339(self.clock()))
        if cleared is not None:
            self.writes.note(key, cleared)
        return plan.wake_after

    async def show_refusal(self, key: BackfillKey, error: ApiError) -> None:
        """A call of this Backfill's pass was refused for good: say so on it."""
        now = rfc3339(self.clock())
        await show_refusal_on(self.client, self.events, self.writes, key, backfill_path, error, now)

    async def _act(self, backfill: dict[str, Any], plan: BackfillPlan) -> None:
        namespace = backfill["metadata"]["namespace"]
        for name in plan.cancels:
            try:
                await self.client.merge_patch(run_path(namespace, name), {"spec": {"cancelled": True}})
            except ApiError as error:
                if not error.not_found:
                    raise
        for body in plan.creates:
            try:
                created = await self.client.create(run_path(namespace), body)
            except ApiError as error:
                if not error.already_exists:
                    raise
                created = await self._existing(backfill, body["metadata"]["name"], error)
            else:
                metrics.RUNS_BACKFILLED.inc()
            self.peers.observe(created)

    async def _existing(self, backfill: dict[str, Any], name: str, error: ApiError) -> dict[str, Any]:
        """The run already under an interval's name: this Backfill's (made by
        an earlier pass whose event has not arrived), or a refusal to show.
        """
        meta = backfill["metadata"]
        found = await self.client.get_optional(run_path(meta["namespace"], name))
        if found is None:
            raise error  # gone again since: the retry creates it
        if (found["metadata"].get("labels") or {}).get(labels.BACKFILL_UID) == meta["uid"]:
            return found
        raise NameTaken(
            error.method,
            error.path,
            f'the run "{name}" for one of its intervals exists and was not made by this Backfill: '
            "rename or delete it",
        )
