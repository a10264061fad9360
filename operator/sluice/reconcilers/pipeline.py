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

from sluice import metrics
from sluice.api import labels
from sluice.engine.clock import now
from sluice.engine.naming import label_value
from sluice.engine.pipeline_plan import (
    CLEARABLE_STATUS_FIELDS,
    CreateRun,
    DeleteRun,
    PipelineFacts,
    PipelinePlan,
    plan_pipeline,
    schedule_of,
    scheduled_run_view,
)
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient, pipeline_path, run_path
from sluice.reconcilers.keys import PipelineKey

log = logging.getLogger(__name__)


class PipelineReconciler:
    def __init__(
        self, client: KubeClient, events: EventRecorder, clock: Callable[[], datetime] = now
    ) -> None:
        self.client = client
        self.events = events
        self.clock = clock

    async def reconcile(self, key: PipelineKey) -> float | None:
        """One pass over one Pipeline; returns seconds until its next scheduled time."""
        pipeline = await self.client.get_optional(pipeline_path(key.namespace, key.name))
        if pipeline is None:
            return None
        runs = None
        if schedule_of(pipeline) is not None:
            runs = tuple(scheduled_run_view(run) for run in await self._scheduled_runs(key))
        plan = plan_pipeline(PipelineFacts(pipeline, self.clock(), runs))
        created = await self._act(key, plan)
        await self._write_status(pipeline, plan)
        for announcement in plan.events:
            await self.events.announce(pipeline, announcement)
        for action in created:
            await self.events.announce(pipeline, action.announcement)
        return plan.wake_after

    async def _scheduled_runs(self, key: PipelineKey) -> list[dict[str, Any]]:
        selector = f"{labels.SCHEDULED_BY}={label_value(key.name)}"
        listing = await self.client.request(
            "GET", run_path(key.namespace), params={"labelSelector": selector}
        )
        return list(listing.get("items") or ())

    async def _act(self, key: PipelineKey, plan: PipelinePlan) -> list[CreateRun]:
        """Carry out the plan's deletes and creates in order; returns the runs
        created (a run that already exists was started by an earlier pass).
        """
        created = []
        for action in plan.actions:
            if isinstance(action, DeleteRun):
                await self.client.delete(run_path(key.namespace, action.name), missing_ok=True)
                continue
            try:
                await self.client.create(run_path(key.namespace), action.body)
            except ApiError as error:
                if error.already_exists:
                    continue
                raise
            metrics.RUNS_SCHEDULED.inc()
            created.append(action)
        return created

    async def _write_status(self, pipeline: dict[str, Any], plan: PipelinePlan) -> None:
        if plan.status is None:
            return
        meta = pipeline["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": plan.status.to_api()}
        # Fields that became None must be removed explicitly in a merge patch.
        for field in CLEARABLE_STATUS_FIELDS:
            body["status"].setdefault(field, None)
        await self.client.merge_patch(pipeline_path(meta["namespace"], meta["name"], "status"), body)
