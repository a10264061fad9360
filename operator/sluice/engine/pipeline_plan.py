"""One pass over one Pipeline: ``plan_pipeline(facts) -> PipelinePlan`` (pure).

A Pipeline's pass reports whether its DAG is valid and runs its schedule:
which scheduled times are due (start their runs, or skip or replace under the
concurrency policy), which finished scheduled runs fall outside the history
limits (delete them), and when the next time is (wake then).

Level-based like the run's plan: everything is recomputed from the
Pipeline's status and the runs that exist, so a restart or a second replica
cannot start a scheduled time twice (its run name is derived from the time)
nor forget one (missed times are found by scanning back from now to the
newer of lastScheduleTime and scheduleActiveSince, bounded by catchUp and
startingDeadlineSeconds).

Times before the schedule took effect never fire on their own: a schedule
added to an existing Pipeline, edited, resumed or re-added starts counting
when the operator first sees it so (status.scheduleActiveSince). Only a
Pipeline created with its schedule and never edited counts from its
creation, so a scheduled time that passed while the operator was down
still fires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sluice.api import labels
from sluice.api.v1alpha1 import (
    FINISHED_RUN_PHASES,
    Condition,
    PipelineSpec,
    PipelineStatus,
    ScheduleSpec,
)
from sluice.engine.announce import Announcement, normal, warning
from sluice.engine.asset_schedule import ASSETS_READY, ScheduledRun, asset_run_number, plan_asset_schedule
from sluice.engine.assets import AssetView, read_sequences
from sluice.engine.clock import WAKE_MARGIN_SECONDS, parse_time, rfc3339
from sluice.engine.conditions import with_health
from sluice.engine.cron import CronSchedule, due_times
from sluice.engine.data_interval import scheduled_interval
from sluice.engine.errors import InvalidPipeline
from sluice.engine.naming import label_value, scheduled_run_name
from sluice.engine.params import substitute
from sluice.engine.pipeline_status import pipeline_status
from sluice.engine.run_body import pipeline_owned_run
from sluice.engine.status_patch import conditional_status_patch

# Fields a merge patch must clear explicitly when the plan drops them.
CLEARABLE_STATUS_FIELDS = ("nextScheduleTime", "observedSchedule", "scheduleActiveSince", "assets")


def own_scheduled_runs(items: Iterable[Mapping[str, Any]], pipeline_uid: str) -> tuple[ScheduledRun, ...]:
    """The runs this Pipeline's schedule started: owned by it (by UID). A run
    merely carrying its label is someone else's: its name is not taken for
    a started time (creating it meets the stranger, NameTaken), nor is it
    counted, replaced or pruned.
    """
    return tuple(
        scheduled_run_view(obj)
        for obj in items
        if any(
            owner.get("kind") == "Pipeline" and owner.get("uid") == pipeline_uid
            for owner in obj["metadata"].get("ownerReferences") or ()
        )
    )


def scheduled_run_view(obj: Mapping[str, Any]) -> ScheduledRun:
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    created = meta.get("creationTimestamp") or ""
    number = asset_run_number(annotations)
    return ScheduledRun(
        meta["name"],
        # An asset run is ordered by when it started: its producers' times may be old (a backfill).
        created if number is not None else annotations.get(labels.SCHEDULED_TIME) or created,
        (obj.get("status") or {}).get("phase"),
        created,
        number,
        read_sequences(annotations.get(labels.ASSET_SEQUENCES)),
    )


@dataclass(frozen=True)
class PipelineFacts:
    pipeline: Mapping[str, Any]  # the Pipeline as read: metadata, spec, status
    now: datetime
    # The runs its schedule started (label sluice.dev/scheduled-by); None when
    # it has no valid schedule (see ``schedule_of``) and none were read.
    runs: tuple[ScheduledRun, ...] | None = None
    # Runs an unfinished rerun re-runs: it reuses their results and workspace
    # claim, so history limits must not delete them yet.
    rerun_sources: frozenset[str] = frozenset()
    # Each schedule.onAssets entry's Asset, as the operator last saw it.
    assets: Mapping[str, AssetView] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateRun:
    body: dict[str, Any]
    scheduled_at: datetime | None = None  # a cron run's time
    note: str | None = None  # an asset run's announcement

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name

    @property
    def announcement(self) -> Announcement:
        """Posted once the run is created (not when it already existed)."""
        if self.note is not None or self.scheduled_at is None:
            return normal("AssetsUpdated", self.note or f"started run {self.name}")
        return normal("Scheduled", f"started run {self.name} for {rfc3339(self.scheduled_at)}")


@dataclass(frozen=True)
class DeleteRun:
    name: str


@dataclass(frozen=True)
class PipelinePlan:
    """Carried out in order: each of ``actions`` (an Announcement is posted
    where it stands, so Events keep the order of the scheduled times), then
    the ``status`` write.
    """

    status: PipelineStatus | None = None  # None: the stored status is already right
    actions: tuple[CreateRun | DeleteRun | Announcement, ...] = ()
    wake_after: float | None = None


def status_patch(pipeline: Mapping[str, Any], status: PipelineStatus) -> dict[str, Any]:
    """The conditional merge patch writing ``status``, clearing the fields it dropped."""
    return conditional_status_patch(pipeline, status, CLEARABLE_STATUS_FIELDS)


@dataclass(frozen=True)
class PipelineSchedule:
    spec: ScheduleSpec
    cron: CronSchedule | None  # None: it runs on asset updates only


def schedule_of(pipeline: Mapping[str, Any]) -> PipelineSchedule | None:
    """The Pipeline's schedule, parsed; None when it has none or it is
    invalid (its Valid condition says why).
    """
    try:
        spec = PipelineSpec.model_validate(pipeline.get("spec") or {}).schedule
        if spec is None:
            return None
        return PipelineSchedule(spec, CronSchedule.parse(spec.cron, spec.timezone) if spec.cron else None)
    except (ValidationError, InvalidPipeline):
        return None


SUSPENDED = "|suspended"
INVALID = "|invalid"


def invalid_mark(observed: str | None) -> str:
    return observed if observed and observed.endswith(INVALID) else (observed or "") + INVALID


def schedule_fingerprint(schedule: ScheduleSpec) -> str:
    """What the schedule's times are computed for. A change of cron, time
    zone or suspension is a new schedule: it starts counting afresh instead
    of firing "missed" times.
    """
    fingerprint = f"{schedule.cron}|{schedule.timezone}"
    return fingerprint + SUSPENDED if schedule.suspend else fingerprint


def counting_since(
    pipeline: Mapping[str, Any], status: PipelineStatus, fingerprint: str, now: datetime
) -> datetime:
    """Where the search for due times stops: nothing at or before it fires.

    A schedule seen as it is for the first time (new, edited, resumed,
    re-added) counts from now, except on a Pipeline created with it and
    never edited (generation 1), which counts from its creation. Otherwise
    from the newer of the last scheduled time and the moment it took effect.
    """
    meta = pipeline["metadata"]
    created = parse_time(meta["creationTimestamp"])
    pristine = meta.get("generation", 1) == 1 and not status.last_schedule_time
    if status.observed_schedule != fingerprint:
        return created if status.observed_schedule is None and pristine else now
    bounds = [parse_time(t) for t in (status.last_schedule_time, status.schedule_active_since) if t]
    if bounds:
        return max(bounds)
    return created if pristine else now


def plan_pipeline(facts: PipelineFacts) -> PipelinePlan:
    pipeline, now = facts.pipeline, facts.now
    current = PipelineStatus.model_validate(pipeline.get("status") or {})
    status = pipeline_status(pipeline, rfc3339(now)) or current
    parsed = schedule_of(pipeline)
    if parsed is None:
        # The asset-run count stays: the next asset run's name must not repeat one.
        cleared: dict[str, Any] = {
            "next_schedule_time": None,
            "schedule_active_since": None,
            "assets": None,
            "conditions": without_asset_condition(status.conditions, rfc3339(now)),
        }
        if not (pipeline.get("spec") or {}).get("schedule"):
            cleared["observed_schedule"] = None
        else:
            # Marked invalid: once fixed (even back to what it was) it is a
            # changed schedule, and starts afresh instead of firing the
            # times that passed while it was broken.
            cleared["observed_schedule"] = invalid_mark(current.observed_schedule)
        return PipelinePlan(status=_changed(current, status.model_copy(update=cleared)))
    schedule = parsed.spec
    runs = list(facts.runs or ())
    doomed = runs_to_prune(runs, schedule, facts.rerun_sources, status.asset_runs or 0)
    actions: list[CreateRun | DeleteRun | Announcement] = [DeleteRun(name) for name in doomed]
    runs = [run for run in runs if run.name not in doomed]
    update: dict[str, Any] = {}
    wakes: list[float] = []
    if parsed.cron is None:
        update |= {"observed_schedule": None, "next_schedule_time": None, "schedule_active_since": None}
    else:
        update |= _plan_cron(pipeline, status, schedule, parsed.cron, runs, now, actions, wakes)
    if schedule.on_assets:
        update |= _plan_assets(facts, status, schedule, runs, actions, wakes)
    else:
        update |= {"assets": None, "conditions": without_asset_condition(status.conditions, rfc3339(now))}
    return PipelinePlan(
        status=_changed(current, status.model_copy(update=update)),
        actions=tuple(actions),
        wake_after=min(wakes) if wakes else None,
    )


def without_asset_condition(conditions: list[Condition] | None, now: str) -> list[Condition] | None:
    """The conditions, without AssetsReadable once nothing is scheduled on
    assets, and the health they then imply (it no longer stalls).
    """
    if not conditions or not any(c.type == ASSETS_READY for c in conditions):
        return conditions
    return with_health([c for c in conditions if c.type != ASSETS_READY], now) or None


def _plan_cron(
    pipeline: Mapping[str, Any],
    status: PipelineStatus,
    schedule: ScheduleSpec,
    cron: CronSchedule,
    runs: Sequence[ScheduledRun],
    now: datetime,
    actions: list[CreateRun | DeleteRun | Announcement],
    wakes: list[float],
) -> dict[str, Any]:
    """The cron half: start the due times' runs (appended to ``actions``),
    and say when the next one is (appended to ``wakes``); returns the
    status fields to set.
    """
    fingerprint = schedule_fingerprint(schedule)
    since = counting_since(pipeline, status, fingerprint, now)
    update: dict[str, Any] = {"observed_schedule": fingerprint}
    if schedule.suspend:
        return update | {"next_schedule_time": None, "schedule_active_since": None}
    if status.observed_schedule != fingerprint or not status.schedule_active_since:
        update["schedule_active_since"] = rfc3339(since)
    due = due_times(cron, since, now, schedule.catch_up, schedule.starting_deadline_seconds)
    actions += _start_due(pipeline, schedule, cron, due, runs)
    if due:
        update["last_schedule_time"] = rfc3339(due[-1])
        update["last_run_name"] = scheduled_run_name(pipeline["metadata"]["name"], due[-1])
    following = cron.next_after(now)
    update["next_schedule_time"] = rfc3339(following)
    wakes.append((following - now).total_seconds() + WAKE_MARGIN_SECONDS)
    return update


def _plan_assets(
    facts: PipelineFacts,
    status: PipelineStatus,
    schedule: ScheduleSpec,
    runs: Sequence[ScheduledRun],
    actions: list[CreateRun | DeleteRun | Announcement],
    wakes: list[float],
) -> dict[str, Any]:
    """The asset half (see engine/asset_schedule.py); runs the cron half
    just started count as active.
    """
    created = [a.name for a in actions if isinstance(a, CreateRun)]
    deleted = {a.name for a in actions if isinstance(a, DeleteRun)}
    active = [r.name for r in runs if r.phase not in FINISHED_RUN_PHASES and r.name not in deleted]
    spec = PipelineSpec.model_validate(facts.pipeline.get("spec") or {})
    plan = plan_asset_schedule(
        facts.pipeline, spec, schedule, status, facts.assets, runs, [*active, *created], facts.now
    )
    actions += plan.events
    actions += [DeleteRun(name) for name in plan.replace]
    if plan.start is not None:
        actions.append(CreateRun(plan.start.body, note=plan.start.note))
    if plan.wake_after is not None:
        wakes.append(plan.wake_after)
    return plan.update


def _start_due(
    pipeline: Mapping[str, Any],
    schedule: ScheduleSpec,
    cron: CronSchedule,
    due: Sequence[datetime],
    runs: Sequence[ScheduledRun],
) -> list[CreateRun | DeleteRun | Announcement]:
    """The runs to create for the due times, oldest first, under the
    concurrency policy: Allow starts each, Forbid skips a time while a run is
    active (and says so), Replace deletes the active runs first.
    """
    existing = {run.name for run in runs}
    active = [run.name for run in runs if run.phase not in FINISHED_RUN_PHASES]
    actions: list[CreateRun | DeleteRun | Announcement] = []
    for moment in due:
        name = scheduled_run_name(pipeline["metadata"]["name"], moment)
        if name in existing:
            continue
        if active and schedule.concurrency_policy == "Forbid":
            message = f"skipped {rfc3339(moment)}: run {active[0]} is still active (Forbid)"
            actions.append(warning("ScheduleSkipped", message))
            continue
        if active and schedule.concurrency_policy == "Replace":
            actions += [DeleteRun(old) for old in active]
            active = []
        actions.append(CreateRun(scheduled_run(pipeline, schedule, moment, cron), moment))
        existing.add(name)
        active.append(name)
    return actions


def scheduled_run(
    pipeline: Mapping[str, Any], schedule: ScheduleSpec, moment: datetime, cron: CronSchedule
) -> dict[str, Any]:
    """The PipelineRun for one scheduled instant, owned by its Pipeline. Its
    data interval runs from the schedule's previous instant to this one.
    """
    meta = pipeline["metadata"]
    local = moment.astimezone(cron.timezone)
    interval = scheduled_interval(cron, moment).to_api()
    annotations = {labels.SCHEDULED_TIME: rfc3339(moment), labels.SCHEDULED_DATE: local.strftime("%Y-%m-%d")}
    body = pipeline_owned_run(
        meta,
        scheduled_run_name(meta["name"], moment),
        {"dataInterval": interval},
        {labels.SCHEDULED_BY: label_value(meta["name"])},
        annotations,
    )
    if schedule.params:
        # Param values may name the scheduled time, like Airflow's {{ ds }}.
        context = {
            "context.scheduledTime": rfc3339(moment),
            "context.scheduledDate": local.strftime("%Y-%m-%d"),
            "context.dataIntervalStart": interval["start"],
            "context.dataIntervalEnd": interval["end"],
        }
        body["spec"]["params"] = [
            {"name": p.name, "value": substitute(p.value, context)} for p in schedule.params
        ]
    return body


def runs_to_prune(
    runs: Sequence[ScheduledRun],
    schedule: ScheduleSpec,
    rerun_sources: frozenset[str] = frozenset(),
    asset_runs_recorded: int = 0,
) -> list[str]:
    """Names of finished scheduled runs beyond the history limits, oldest
    first. A run an unfinished rerun re-runs is kept (and not counted) until
    that rerun ends: deleting it would take its workspace claim from under it.
    An asset run the status does not count yet (its pass lost the write) is
    kept too: it is how the next pass learns it was made.
    """

    def kept(run: ScheduledRun) -> bool:
        return run.name in rerun_sources or (run.asset_run or 0) > asset_runs_recorded

    def finished(phases: tuple[str, ...]) -> list[ScheduledRun]:
        chosen = [run for run in runs if run.phase in phases and not kept(run)]
        return sorted(chosen, key=lambda run: (run.scheduled_at, run.asset_run or 0, run.name))

    succeeded = finished(("Succeeded",))
    failed = finished(("Failed", "Cancelled"))
    doomed = succeeded[: max(0, len(succeeded) - schedule.successful_runs_history_limit)]
    doomed += failed[: max(0, len(failed) - schedule.failed_runs_history_limit)]
    return [run.name for run in doomed]


def _changed(old: PipelineStatus, new: PipelineStatus) -> PipelineStatus | None:
    """``new`` when writing it changes what is stored, else None (no write)."""
    return new if new.differs_from(old) else None
