"""One pass over one Backfill: ``plan_backfill(facts) -> BackfillPlan`` (pure).

A Backfill loads a past range of a scheduled Pipeline, as Airflow's
``dags backfill`` does: one run per interval of the schedule lying within
[spec.start, spec.end], oldest first, at most ``maxConcurrent`` at once.
An interval some other run already loaded successfully (a scheduled run,
another Backfill's) is counted done and not run again, unless
``rerunSucceeded``.

Level-based like every plan: the runs are found again on each pass (by
name, derived from the Backfill's UID and the interval's end). Two things
are kept in the status instead of being recomputed, so that the answer
never changes under the Backfill's feet: the schedule it took its intervals
from (an edit of the Pipeline's cron does not reshuffle a half-done range),
and each interval's outcome once known (a finished run deleted later by its
time to live is not taken for an interval never run, and run again).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from sluice.api import labels
from sluice.api.v1alpha1 import (
    API_VERSION,
    FINISHED_RUN_PHASES,
    MAX_BACKFILL_RUNS,
    BackfillSpec,
    BackfillStatus,
    PipelineSpec,
)
from sluice.engine.admission import PeerRun
from sluice.engine.announce import Announcement, normal, warning
from sluice.engine.clock import WAKE_MARGIN_SECONDS, parse_time, rfc3339
from sluice.engine.conditions import condition, set_condition
from sluice.engine.cron import CronSchedule
from sluice.engine.data_interval import scheduled_interval
from sluice.engine.errors import InvalidPipeline
from sluice.engine.naming import backfill_run_name, label_value
from sluice.engine.params import substitute
from sluice.engine.status_patch import conditional_status_patch

SUCCEEDED, FAILED, LOADED, STARTED, OPEN = "S", "F", "L", "R", "."
# An interval whose run is another's, still active: looked at again this often.
BUSY_RECHECK_SECONDS = 30.0
CLEARABLE_STATUS_FIELDS = ("completionTime",)


@dataclass(frozen=True)
class BackfillFacts:
    backfill: Mapping[str, Any]  # as read: metadata, spec, status
    pipeline: Mapping[str, Any] | None  # None: not found
    runs: tuple[PeerRun, ...]  # the runs of its pipeline
    now: datetime


@dataclass(frozen=True)
class BackfillPlan:
    """Carried out in order: cancel, create (oldest first), write the status, post the events."""

    creates: tuple[dict[str, Any], ...] = ()
    cancels: tuple[str, ...] = ()
    status: BackfillStatus | None = None  # None: the stored one is right
    events: tuple[Announcement, ...] = ()
    wake_after: float | None = None


@dataclass
class Tally:
    """Where each interval stands this pass."""

    outcomes: list[str]
    running: list[str] = field(default_factory=list)  # its active runs' names
    uncancelled: list[str] = field(default_factory=list)  # of those, not yet asked to stop
    pending: list[int] = field(default_factory=list)  # interval indexes with no run yet
    busy: int = 0  # of those, how many another run is loading right now

    def count(self, letter: str) -> int:
        return self.outcomes.count(letter)


@functools.lru_cache(maxsize=16)
def intervals(cron: CronSchedule, start: datetime, end: datetime) -> tuple[datetime, ...] | None:
    """The ends of the schedule's intervals lying within [start, end], oldest
    first (an interval runs from one instant to the next); None when there
    are more than MAX_BACKFILL_RUNS.
    """
    instants: list[datetime] = []
    for moment in cron.oldest_first(start - timedelta(microseconds=1)):
        if moment > end:
            break
        instants.append(moment)
        if len(instants) > MAX_BACKFILL_RUNS + 1:
            return None
    # Cached: a Backfill is re-planned on each of its runs' changes, and the
    # same range of the same schedule always has the same intervals.
    return tuple(instants[1:])


def plan_backfill(facts: BackfillFacts) -> BackfillPlan:
    backfill, now = facts.backfill, rfc3339(facts.now)
    meta = backfill["metadata"]
    current = BackfillStatus.model_validate(backfill.get("status") or {})
    spec = BackfillSpec.model_validate(backfill.get("spec") or {})
    status = current.model_copy(update={"observed_generation": meta.get("generation")})
    if current.finished:
        return BackfillPlan(status=_changed(current, status))
    if spec.cancelled and not current.schedule:
        return _end(current, status, "Cancelled", "Cancelled", "cancelled before it started a run", now)
    found = _intervals_to_load(facts, current, status, spec, now)
    if isinstance(found, BackfillPlan):
        return found
    cron, ends = found
    tally = _tally(meta, spec, current, ends, facts.runs)
    cancels: tuple[str, ...] = ()
    creates: list[dict[str, Any]] = []
    if spec.cancelled:
        cancels = tuple(tally.uncancelled)
    elif current.schedule:
        # Not on the first pass: the schedule the names derive from is
        # recorded before any run exists, so a crash cannot leave runs
        # that a later pass (the Pipeline's cron edited) would not find.
        slots = max(0, spec.max_concurrent - len(tally.running))
        assert facts.pipeline is not None
        # An interval is loaded once it has ended, never before (its data
        # would be incomplete, and the schedule would load it again).
        ended = [index for index in tally.pending if ends[index] <= facts.now]
        for index in ended[:slots]:
            creates.append(backfill_run(backfill, facts.pipeline, spec, cron, ends[index]))
            tally.outcomes[index] = STARTED
    status = _counted(status, tally, len(creates), cron, now, spec.cancelled)
    if creates:
        status = status.model_copy(update={"last_run_name": creates[-1]["metadata"]["name"]})
    waits = []
    if not current.schedule and status.phase == "Running":
        waits.append(0.0)  # the first pass only recorded the schedule: go on at once
    if tally.busy and not spec.cancelled:
        waits.append(BUSY_RECHECK_SECONDS)
    future = [ends[index] for index in tally.pending if ends[index] > facts.now]
    if future and not spec.cancelled:
        waits.append((min(future) - facts.now).total_seconds() + WAKE_MARGIN_SECONDS)
    wake = min(waits) if waits else None
    events: list[Announcement] = []
    if current.phase in (None, "Pending") and status.phase == "Running":
        events.append(
            normal("Started", f"loading {len(ends)} intervals of {cron.cron} ({cron.timezone.key})")
        )
    if status.finished and not current.finished:
        events.append(_ending_event(status))
    return BackfillPlan(tuple(creates), cancels, _changed(current, status), tuple(events), wake)


def _intervals_to_load(
    facts: BackfillFacts, current: BackfillStatus, status: BackfillStatus, spec: BackfillSpec, now: str
) -> tuple[CronSchedule, tuple[datetime, ...]] | BackfillPlan:
    """The schedule and the ends of the intervals to load; or, when there is
    nothing to load (yet), the plan that says why.
    """
    if facts.pipeline is None and current.schedule:
        message = f'pipeline "{spec.pipeline_ref.name}" was deleted (and its runs with it)'
        return _end(current, status, "Failed", "PipelineNotFound", message, now)
    cron, failure = _schedule(current, facts.pipeline)
    if cron is None:
        if failure is None:  # the Pipeline does not exist (yet): wait for it
            message = f'waiting for pipeline "{spec.pipeline_ref.name}" to exist'
            waiting = status.model_copy(
                update={
                    "phase": "Pending",
                    "conditions": set_condition(
                        status.conditions, condition("Succeeded", "Unknown", "PipelineNotFound", message, now)
                    ),
                }
            )
            return BackfillPlan(status=_changed(current, waiting))
        return _end(current, status, "Failed", failure[0], failure[1], now)
    ends = intervals(cron, parse_time(spec.start), parse_time(spec.end))
    if ends is None:
        message = f"the range holds more than {MAX_BACKFILL_RUNS} intervals of {cron.cron}: split it"
        return _end(current, status, "Failed", "RangeTooLarge", message, now)
    if not ends:
        message = f"no interval of {cron.cron} ({cron.timezone.key}) lies within {spec.start} .. {spec.end}"
        return _end(current, status, "Failed", "EmptyRange", message, now)
    return cron, ends


def _schedule(
    current: BackfillStatus, pipeline: Mapping[str, Any] | None
) -> tuple[CronSchedule | None, tuple[str, str] | None]:
    """The schedule to take intervals from: the one recorded at the start,
    else the Pipeline's. (None, None): no Pipeline yet; (None, why): cannot run.
    """
    if current.schedule:
        cron_text, _, zone = current.schedule.rpartition("|")
        return CronSchedule.parse(cron_text, zone), None
    if pipeline is None:
        return None, None
    try:
        schedule = PipelineSpec.model_validate(pipeline.get("spec") or {}).schedule
    except ValidationError:
        return None, (
            "InvalidPipeline",
            "its pipeline's spec is invalid (see the Pipeline's Valid condition)",
        )
    if schedule is None or not schedule.cron:
        name = pipeline["metadata"]["name"]
        return None, ("NoSchedule", f'pipeline "{name}" has no cron schedule to take intervals from')
    try:
        return CronSchedule.parse(schedule.cron, schedule.timezone), None
    except InvalidPipeline as error:
        return None, (error.reason, error.message)


def _tally(
    meta: Mapping[str, Any],
    spec: BackfillSpec,
    current: BackfillStatus,
    ends: tuple[datetime, ...],
    runs: Iterable[PeerRun],
) -> Tally:
    outcomes = list(current.outcomes or "")
    if len(outcomes) != len(ends):
        outcomes = [OPEN] * len(ends)
    runs = tuple(runs)
    mine = {run.name: run for run in runs if run.backfill_uid == meta["uid"]}
    loaded, busy = _loaded_elsewhere(runs, meta["uid"]) if not spec.rerun_succeeded else (set(), set())
    tally = Tally(outcomes)
    for index, end in enumerate(ends):
        if outcomes[index] not in (OPEN, STARTED):
            continue
        name = backfill_run_name(meta["name"], meta["uid"], end)
        run = mine.get(name)
        if run is not None:
            _count_own(tally, index, run)
        elif outcomes[index] == STARTED:
            # Made by an earlier pass and gone before it ended (deleted by
            # hand, with its Pipeline): failed, never silently run again.
            outcomes[index] = FAILED
        elif end in loaded:
            outcomes[index] = LOADED
        elif end in busy:
            tally.busy += 1  # another run is loading it: wait for its outcome
        else:
            tally.pending.append(index)
    return tally


def _count_own(tally: Tally, index: int, run: PeerRun) -> None:
    if run.phase == "Succeeded":
        tally.outcomes[index] = SUCCEEDED
    elif run.phase in FINISHED_RUN_PHASES:
        tally.outcomes[index] = FAILED
    else:
        tally.outcomes[index] = STARTED
        tally.running.append(run.name)
        if not run.cancel_requested:
            tally.uncancelled.append(run.name)


def _loaded_elsewhere(runs: Iterable[PeerRun], uid: str) -> tuple[set[datetime], set[datetime]]:
    """Instants other runs of the pipeline (scheduled, another Backfill's, by
    hand with the annotation) loaded successfully, and are loading now.
    """
    loaded: set[datetime] = set()
    busy: set[datetime] = set()
    for run in runs:
        at = _instant(run.scheduled_time) if run.scheduled_time and run.backfill_uid != uid else None
        if at is None:
            continue
        if run.phase == "Succeeded":
            loaded.add(at)
        elif not run.finished:
            busy.add(at)
    return loaded, busy


def _instant(value: str) -> datetime | None:
    """An annotation's time as an instant (written with Z or an offset)."""
    try:
        return parse_time(value)
    except ValueError:
        return None


def _counted(
    status: BackfillStatus, tally: Tally, created: int, cron: CronSchedule, now: str, cancelled: bool
) -> BackfillStatus:
    total = len(tally.outcomes)
    done = tally.count(SUCCEEDED) + tally.count(LOADED)
    failed = tally.count(FAILED)
    running = len(tally.running) + created
    pending = len(tally.pending) - created + tally.busy
    finished = not running
    if cancelled:
        phase, state, reason = "Cancelled", "False", "Cancelled"
        message = f"cancelled with {done} of {total} intervals loaded"
        if running:
            message += f"; stopping {running} run(s)"
    elif running or pending:
        finished = False
        phase, state, reason, message = "Running", "Unknown", "Running", f"{done} of {total} intervals loaded"
    elif failed:
        phase, state, reason = "Failed", "False", "RunsFailed"
        message = f"{failed} of {total} intervals failed: a new Backfill over the range runs them again"
    else:
        phase, state, reason, message = "Succeeded", "True", "Succeeded", f"all {total} intervals loaded"
    return status.model_copy(
        update={
            "phase": phase,
            "conditions": set_condition(
                status.conditions, condition("Succeeded", state, reason, message, now)
            ),
            "start_time": status.start_time or now,
            "completion_time": (status.completion_time or now) if finished else None,
            "schedule": f"{cron.cron}|{cron.timezone.key}",
            "total": total,
            "done": done,
            "already_loaded": tally.count(LOADED),
            "running": running,
            "failed": failed,
            "pending": pending,
            "outcomes": "".join(tally.outcomes),
        }
    )


def _end(
    current: BackfillStatus, status: BackfillStatus, phase: str, reason: str, message: str, now: str
) -> BackfillPlan:
    ended = status.model_copy(
        update={
            "phase": phase,
            "conditions": set_condition(
                status.conditions, condition("Succeeded", "False", reason, message, now)
            ),
            "start_time": status.start_time or now,
            "completion_time": now,
        }
    )
    return BackfillPlan(status=_changed(current, ended), events=(_ending_event(ended),))


def _ending_event(status: BackfillStatus) -> Announcement:
    found = next(c for c in status.conditions or () if c.type == "Succeeded")
    if status.phase == "Succeeded":
        return normal("Succeeded", found.message)
    return warning(found.reason, found.message)


def backfill_run(
    backfill: Mapping[str, Any],
    pipeline: Mapping[str, Any],
    spec: BackfillSpec,
    cron: CronSchedule,
    end: datetime,
) -> dict[str, Any]:
    """The run loading the interval ending at ``end``: what its schedule
    would have started then (owned by the Pipeline, so deleting the
    Backfill keeps what it loaded), with the Backfill's params over the
    schedule's.
    """
    meta, pipeline_meta = backfill["metadata"], pipeline["metadata"]
    interval = scheduled_interval(cron, end)
    local = end.astimezone(cron.timezone)
    context = {
        "context.scheduledTime": rfc3339(end),
        "context.scheduledDate": local.strftime("%Y-%m-%d"),
        "context.dataIntervalStart": interval.start,
        "context.dataIntervalEnd": interval.end,
    }
    schedule = (pipeline.get("spec") or {}).get("schedule") or {}
    params = {p["name"]: p["value"] for p in schedule.get("params") or ()}
    params.update({p.name: p.value for p in spec.params or ()})
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": {
            "name": backfill_run_name(meta["name"], meta["uid"], end),
            "namespace": meta["namespace"],
            "labels": {
                labels.PIPELINE: label_value(pipeline_meta["name"]),
                labels.BACKFILL: label_value(meta["name"]),
                labels.BACKFILL_UID: meta["uid"],
            },
            "annotations": {
                labels.SCHEDULED_TIME: rfc3339(end),
                labels.SCHEDULED_DATE: local.strftime("%Y-%m-%d"),
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Pipeline",
                    "name": pipeline_meta["name"],
                    "uid": pipeline_meta["uid"],
                }
            ],
        },
        "spec": {"pipelineRef": {"name": pipeline_meta["name"]}, "dataInterval": interval.to_api()},
    }
    if params:
        body["spec"]["params"] = [
            {"name": name, "value": substitute(value, context)} for name, value in params.items()
        ]
    return body


def status_patch(backfill: Mapping[str, Any], status: BackfillStatus) -> dict[str, Any]:
    """The conditional merge patch writing ``status``, clearing the fields it dropped."""
    return conditional_status_patch(backfill, status, CLEARABLE_STATUS_FIELDS)


def _changed(old: BackfillStatus, new: BackfillStatus) -> BackfillStatus | None:
    return new if new.differs_from(old) else None
