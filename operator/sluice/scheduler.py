"""Scheduled runs of a Pipeline: start what is due, prune history, report times.

Level-based like the run reconciler: everything is recomputed from the
Pipeline's status (lastScheduleTime) and the runs that exist, so a restart
or a second replica cannot start a scheduled time twice (its run name is
derived from the time) nor forget one (missed times are found by scanning
forward from lastScheduleTime, bounded by catchUp and startingDeadlineSeconds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sluice import labels, metrics
from sluice.api.v1alpha1 import API_VERSION, PipelineSpec, PipelineStatus, ScheduleSpec
from sluice.clock import parse_time, rfc3339
from sluice.dag import InvalidPipeline
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient, pipeline_path, run_path
from sluice.naming import label_value
from sluice.params import substitute
from sluice.schedule import Schedule, due_times, run_name

log = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def schedule_fingerprint(schedule: ScheduleSpec) -> str:
    """What lastScheduleTime was computed for: a changed cron or timezone
    restarts the schedule from now instead of firing "missed" times.
    """
    return f"{schedule.cron}|{schedule.timezone}"


def scheduled_run(
    pipeline: dict[str, Any], schedule: ScheduleSpec, moment: datetime, zone: Schedule
) -> dict[str, Any]:
    meta = pipeline["metadata"]
    local = moment.astimezone(zone.timezone)
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": {
            "name": run_name(meta["name"], moment),
            "namespace": meta["namespace"],
            "labels": {
                labels.PIPELINE: label_value(meta["name"]),
                labels.SCHEDULED_BY: label_value(meta["name"]),
            },
            "annotations": {
                labels.SCHEDULED_TIME: rfc3339(moment),
                labels.SCHEDULED_DATE: local.strftime("%Y-%m-%d"),
            },
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "Pipeline", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "spec": {"pipelineRef": {"name": meta["name"]}},
    }
    if schedule.params:
        # Param values may name the scheduled time, like Airflow's {{ ds }}.
        context = {
            "context.scheduledTime": rfc3339(moment),
            "context.scheduledDate": local.strftime("%Y-%m-%d"),
        }
        body["spec"]["params"] = [
            {"name": p.name, "value": substitute(p.value, context)} for p in schedule.params
        ]
    return body


def _scheduled_at(run: dict[str, Any]) -> tuple[str, str]:
    meta = run["metadata"]
    at = (meta.get("annotations") or {}).get(labels.SCHEDULED_TIME) or meta.get("creationTimestamp") or ""
    return at, meta["name"]


def runs_to_prune(runs: list[dict[str, Any]], schedule: ScheduleSpec) -> list[str]:
    """Names of finished scheduled runs beyond the history limits, oldest first."""

    def finished(phases: tuple[str, ...]) -> list[dict[str, Any]]:
        chosen = [r for r in runs if (r.get("status") or {}).get("phase") in phases]
        return sorted(chosen, key=_scheduled_at)

    succeeded = finished(("Succeeded",))
    failed = finished(("Failed", "Cancelled"))
    doomed = succeeded[: max(0, len(succeeded) - schedule.successful_runs_history_limit)]
    doomed += failed[: max(0, len(failed) - schedule.failed_runs_history_limit)]
    return [r["metadata"]["name"] for r in doomed]


class Scheduler:
    def __init__(
        self,
        client: KubeClient,
        events: EventRecorder,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.events = events
        self.clock = clock

    async def reconcile(
        self, pipeline: dict[str, Any], status: PipelineStatus
    ) -> tuple[PipelineStatus, float | None]:
        """Start due runs; returns the status to write and seconds until the next time."""
        spec = PipelineSpec.model_validate(pipeline.get("spec") or {})
        schedule = spec.schedule
        if schedule is None:
            return status.model_copy(update={"next_schedule_time": None, "observed_schedule": None}), None
        try:
            zone = Schedule.parse(schedule.cron, schedule.timezone)
        except InvalidPipeline:
            return status.model_copy(update={"next_schedule_time": None}), None  # reported as Valid=False
        meta = pipeline["metadata"]
        now = self.clock()
        fingerprint = schedule_fingerprint(schedule)
        if status.observed_schedule is not None and status.observed_schedule != fingerprint:
            last = now  # the schedule was edited: start it afresh, fire nothing "missed"
        elif status.last_schedule_time:
            last = parse_time(status.last_schedule_time)
        else:
            last = parse_time(meta["creationTimestamp"])
        runs = await self._scheduled_runs(meta["namespace"], meta["name"])
        await self._prune(pipeline, runs, schedule)
        update: dict[str, Any] = {"observed_schedule": fingerprint}
        if last == now:
            update["last_schedule_time"] = rfc3339(now)
        if schedule.suspend:
            update["next_schedule_time"] = None
            return status.model_copy(update=update), None
        due = due_times(zone, last, now, schedule.catch_up, schedule.starting_deadline_seconds)
        for moment in due:
            await self._start(pipeline, schedule, zone, moment, runs)
        if due:
            update["last_schedule_time"] = rfc3339(due[-1])
            update["last_run_name"] = run_name(meta["name"], due[-1])
        following = zone.next_after(now)
        update["next_schedule_time"] = rfc3339(following)
        return status.model_copy(update=update), (following - now).total_seconds() + 0.05

    async def _scheduled_runs(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        selector = f"{labels.SCHEDULED_BY}={label_value(pipeline)}"
        listing = await self.client.request("GET", run_path(namespace), params={"labelSelector": selector})
        return list(listing.get("items") or ())

    async def _start(
        self,
        pipeline: dict[str, Any],
        schedule: ScheduleSpec,
        zone: Schedule,
        moment: datetime,
        runs: list[dict[str, Any]],
    ) -> None:
        meta = pipeline["metadata"]
        active = [r for r in runs if (r.get("status") or {}).get("phase") not in TERMINAL]
        name = run_name(meta["name"], moment)
        if any(r["metadata"]["name"] == name for r in runs):
            return
        if active and schedule.concurrency_policy == "Forbid":
            await self.events.warning(
                pipeline,
                "ScheduleSkipped",
                f"skipped {rfc3339(moment)}: run {active[0]['metadata']['name']} is still active (Forbid)",
            )
            return
        if active and schedule.concurrency_policy == "Replace":
            for old in active:
                await self.client.delete(
                    run_path(meta["namespace"], old["metadata"]["name"]), missing_ok=True
                )
        try:
            created = await self.client.create(
                run_path(meta["namespace"]), scheduled_run(pipeline, schedule, moment, zone)
            )
        except ApiError as error:
            if error.already_exists:
                return
            raise
        runs.append(created)
        metrics.RUNS_SCHEDULED.inc()
        await self.events.normal(pipeline, "Scheduled", f"started run {name} for {rfc3339(moment)}")

    async def _prune(
        self, pipeline: dict[str, Any], runs: list[dict[str, Any]], schedule: ScheduleSpec
    ) -> None:
        for name in runs_to_prune(runs, schedule):
            await self.client.delete(run_path(pipeline["metadata"]["namespace"], name), missing_ok=True)
            runs[:] = [r for r in runs if r["metadata"]["name"] != name]


async def write_pipeline_status(client: KubeClient, pipeline: dict[str, Any], status: PipelineStatus) -> None:
    meta = pipeline["metadata"]
    body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status.to_api()}
    # Fields that became None must be removed explicitly in a merge patch.
    for field in ("nextScheduleTime", "observedSchedule"):
        body["status"].setdefault(field, None)
    await client.merge_patch(pipeline_path(meta["namespace"], meta["name"], "status"), body)
