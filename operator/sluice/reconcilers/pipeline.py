"""The Pipeline reconciler: observe → plan → act → write → announce.

A Pipeline's pass reports its validity and runs its schedule; what to do is
decided by ``engine.pipeline_plan.plan_pipeline``, and this module reads the
Pipeline and its scheduled runs, creates and deletes runs, and writes the
status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sluice import faults, metrics
from sluice.api import labels
from sluice.engine.announce import Announcement
from sluice.engine.clock import now, rfc3339
from sluice.engine.naming import label_value
from sluice.engine.pipeline_plan import (
    CreateRun,
    DeleteRun,
    PipelineFacts,
    PipelinePlan,
    own_scheduled_runs,
    plan_pipeline,
    schedule_of,
    status_patch,
)
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient, NameTaken, pipeline_path, run_path
from sluice.reconcilers.asset_index import AssetIndex
from sluice.reconcilers.keys import OwnWrites, PipelineKey
from sluice.reconcilers.peers import PeerIndex
from sluice.reconcilers.refusals import clear_blocked, show_refusal_on

log = logging.getLogger(__name__)


class PipelineReconciler:
    def __init__(
        self,
        client: KubeClient,
        events: EventRecorder,
        writes: OwnWrites,
        peers: PeerIndex,
        assets: AssetIndex | None = None,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.client = client
        self.events = events
        self.writes = writes
        self.peers = peers
        self.assets = assets or AssetIndex()
        self.clock = clock

    async def reconcile(self, key: PipelineKey) -> float | None:
        """One pass over one Pipeline; returns seconds until its next scheduled time."""
        pipeline = await self.client.get_optional(pipeline_path(key.namespace, key.name))
        if pipeline is None:
            return None
        runs = None
        schedule = schedule_of(pipeline)
        if schedule is not None:
            runs = own_scheduled_runs(await self._scheduled_runs(key), pipeline["metadata"]["uid"])
        rerun_sources = self.peers.rerun_sources(key.namespace)
        waits_on = (schedule.spec.on_assets if schedule else None) or []
        assets = self.assets.views(key.namespace, waits_on)
        plan = plan_pipeline(PipelineFacts(pipeline, self.clock(), runs, rerun_sources, assets))
        await self._act(pipeline, plan)
        path = pipeline_path(key.namespace, key.name, "status")
        if plan.status is not None:
            pipeline = await self.client.merge_patch(path, status_patch(pipeline, plan.status))
            self.writes.note(key, pipeline)
            if any(isinstance(a, CreateRun) and a.note for a in plan.actions):
                faults.crash_point(faults.PIPELINE_STATUS_WRITTEN)
        # Every call of the pass succeeded: a refusal shown earlier is over.
        cleared = await clear_blocked(self.client, pipeline, path, rfc3339(self.clock()))
        if cleared is not None:
            self.writes.note(key, cleared)
        return plan.wake_after

    async def show_refusal(self, key: PipelineKey, error: ApiError) -> None:
        """A call of this Pipeline's pass (a scheduled run's create, a prune)
        was refused for good: say so on the Pipeline.
        """
        now = rfc3339(self.clock())
        await show_refusal_on(self.client, self.events, self.writes, key, pipeline_path, error, now)

    async def _scheduled_runs(self, key: PipelineKey) -> list[dict[str, Any]]:
        selector = f"{labels.SCHEDULED_BY}={label_value(key.name)}"
        listing = await self.client.request(
            "GET", run_path(key.namespace), params={"labelSelector": selector}
        )
        return list(listing.get("items") or ())

    async def _act(self, pipeline: dict[str, Any], plan: PipelinePlan) -> None:
        """Carry out the plan's actions in order. A run that already exists was
        started by an earlier pass: it is neither counted nor announced again.
        """
        namespace = pipeline["metadata"]["namespace"]
        for action in plan.actions:
            if isinstance(action, Announcement):
                await self.events.announce(pipeline, action)
            elif isinstance(action, DeleteRun):
                await self.client.delete(run_path(namespace, action.name), missing_ok=True)
            else:
                try:
                    await self.client.create(run_path(namespace), action.body)
                except ApiError as error:
                    if error.already_exists and await self._ours(pipeline, action.name, error):
                        continue
                    raise
                metrics.RUNS_SCHEDULED.inc()
                if action.note:
                    metrics.ASSET_RUNS.inc()
                    faults.crash_point(faults.ASSET_RUN_CREATED)
                await self.events.announce(pipeline, action.announcement)

    async def _ours(self, pipeline: dict[str, Any], name: str, error: ApiError) -> bool:
        """Whether the run that exists under a scheduled run's name is this
        Pipeline's (an earlier pass created it). If not, nothing may count
        that time as started: raise a refusal the Pipeline shows (Blocked
        condition, Warning Event) until the name is freed; lastScheduleTime
        does not move, so the time is started once it is.
        """
        meta = pipeline["metadata"]
        existing = await self.client.get_optional(run_path(meta["namespace"], name))
        if existing is None:
            raise error  # gone again since: the retry creates it
        owners = existing["metadata"].get("ownerReferences") or ()
        if any(o.get("kind") == "Pipeline" and o.get("uid") == meta["uid"] for o in owners):
            return True
        raise NameTaken(
            error.method,
            error.path,
            f'the run "{name}" for a scheduled time exists and was not started by this schedule: '
            "rename or delete it, and the time is started",
        )
