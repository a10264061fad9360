"""The asset half of a Pipeline's schedule (pure): when its data is there.

A Pipeline scheduled ``onAssets`` gets one run once every listed asset has
had an update since the run before (Airflow's data-aware scheduling). The
run loads what its producers loaded: its data interval spans theirs and its
scheduled time is the newest producer's, so a downstream daily pipeline
processes the same day; ``$(context.triggeredBy...)`` says which runs
updated what. See engine/assets.py for why nothing is counted twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sluice.api import labels
from sluice.api.v1alpha1 import (
    AssetEvent,
    AssetWatermark,
    Condition,
    PipelineSpec,
    PipelineStatus,
    ScheduleSpec,
)
from sluice.engine.announce import Announcement, warning
from sluice.engine.assets import (
    AssetRef,
    AssetView,
    adopt_consumed,
    all_updated,
    asset_run_name,
    consumed,
    sequences_annotation,
    triggering_events,
    waiting_for,
    watermarks,
)
from sluice.engine.clock import WAKE_MARGIN_SECONDS, parse_time, rfc3339
from sluice.engine.conditions import condition, set_condition
from sluice.engine.naming import label_value
from sluice.engine.params import substitute
from sluice.engine.run_body import pipeline_owned_run

ASSETS_READY = "AssetsReadable"
RATE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class ScheduledRun:
    """A run a Pipeline's schedule started (by cron or by asset updates), as
    its plans need it.
    """

    name: str
    scheduled_at: str  # its scheduled time, or its creation time
    phase: str | None
    created: str = ""
    asset_run: int | None = None  # its number among the asset runs
    asset_sequences: Mapping[str, int] | None = None


@dataclass(frozen=True)
class AssetRunStart:
    """Create ``body``: the next asset run; ``note`` is announced once it exists."""

    body: dict[str, Any]
    note: str


@dataclass(frozen=True)
class AssetSchedulePlan:
    update: dict[str, Any] = field(default_factory=dict)  # PipelineStatus fields to set
    start: AssetRunStart | None = None
    replace: tuple[str, ...] = ()  # active runs to delete first (concurrencyPolicy Replace)
    events: tuple[Announcement, ...] = ()
    wake_after: float | None = None


def plan_asset_schedule(
    pipeline: Mapping[str, Any],
    spec: PipelineSpec,
    schedule: ScheduleSpec,
    status: PipelineStatus,
    views: Mapping[str, AssetView],
    runs: Sequence[ScheduledRun],
    active: Sequence[str],
    now: datetime,
) -> AssetSchedulePlan:
    """What the asset schedule does this pass: record where each asset
    stands, and start the next run once every asset has been updated,
    under the schedule's concurrency policy and the pipeline's rate limit.
    """
    meta = pipeline["metadata"]
    namespace = meta["namespace"]
    refs = [AssetRef.parse(text, namespace) for text in schedule.on_assets or ()]
    # A Pipeline created with this schedule (never edited) counts updates
    # from its creation, also for an asset it can only read later (shared
    # afterwards); an asset added by an edit counts from when the operator
    # first reads it.
    pristine = meta.get("generation", 1) == 1 and not status.asset_runs
    counts_from = meta.get("creationTimestamp") if pristine else None
    marks = watermarks(refs, status.assets or (), views, namespace, counts_from)
    readable = _readable(status.conditions, marks, rfc3339(now))
    events = _problems_shown(status.assets or (), marks)
    update: dict[str, Any] = {"assets": marks, "conditions": readable}
    number = (status.asset_runs or 0) + 1
    name = asset_run_name(meta["name"], number)
    made = next((run for run in runs if run.name == name), None)
    if made is not None:
        # An earlier pass created it and its status write was lost: it
        # consumed what its annotation says, no more; look again at once.
        update |= _started(adopt_consumed(marks, made.asset_sequences or {}), number, name)
        return AssetSchedulePlan(update, events=events, wake_after=WAKE_MARGIN_SECONDS)
    if schedule.suspend or not all_updated(marks):
        return AssetSchedulePlan(update, events=events)
    if active and schedule.concurrency_policy == "Forbid":
        # Not skipped: the updates stay unconsumed, and the run starts when
        # the active one ends (its end wakes this Pipeline).
        return AssetSchedulePlan(update, events=events)
    limit = spec.max_triggered_runs_per_minute
    # Counted from the status, not from the runs that exist: history limits
    # and Replace delete runs, which must not free their place in the minute.
    recent = sorted(t for t in map(parse_time, status.asset_run_times or ()) if t > now - RATE_WINDOW)
    if limit is not None and len(recent) >= limit:
        # Updates keep arriving: they are gathered into the run that starts
        # once the oldest of the minute's runs leaves the window.
        wait = (recent[-limit] + RATE_WINDOW - now).total_seconds()
        return AssetSchedulePlan(update, events=events, wake_after=max(wait, 0) + WAKE_MARGIN_SECONDS)
    triggering = triggering_events(refs, views, marks)
    body = asset_run(pipeline, schedule, name, number, marks, triggering)
    producers = ", ".join(sorted({f"{e.run}/{e.task}" for e in triggering})[:10])
    note = f"started run {name}: {', '.join(r.text for r in refs)} updated (by {producers})"
    replaced = tuple(active) if schedule.concurrency_policy == "Replace" else ()
    update |= _started(consumed(marks), number, name)
    kept = limit or 1  # only the window's worth of start times matter
    update["asset_run_times"] = [*(rfc3339(t) for t in recent), rfc3339(now)][-kept:]
    return AssetSchedulePlan(update, AssetRunStart(body, note), replaced, events)


def _started(marks: list[AssetWatermark], number: int, name: str) -> dict[str, Any]:
    return {"assets": marks, "asset_runs": number, "last_asset_run_name": name, "last_run_name": name}


def _readable(
    conditions: list[Condition] | None, marks: Sequence[AssetWatermark], now: str
) -> list[Condition]:
    problems = [m.message for m in marks if m.message]
    if problems:
        reason = "AssetNotShared" if any("not shared" in p for p in problems) else "AssetUnreadable"
        return set_condition(conditions, condition(ASSETS_READY, "False", reason, "; ".join(problems), now))
    waiting = waiting_for(marks)
    message = (
        f"waiting for an update of {', '.join(waiting)}"
        if waiting
        else f"all {len(marks)} assets updated since the last run"
    )
    return set_condition(conditions, condition(ASSETS_READY, "True", "Readable", message, now))


def _problems_shown(old: Sequence[AssetWatermark], new: Sequence[AssetWatermark]) -> tuple[Announcement, ...]:
    """A Warning the first time an asset cannot be read (not on every pass)."""
    before = {m.name: m.message for m in old}
    return tuple(
        warning("AssetUnreadable", m.message) for m in new if m.message and before.get(m.name) != m.message
    )


def asset_run(
    pipeline: Mapping[str, Any],
    schedule: ScheduleSpec,
    name: str,
    number: int,
    marks: Sequence[AssetWatermark],
    triggering: Sequence[AssetEvent],
) -> dict[str, Any]:
    """The run that asset updates start, owned by its Pipeline. It loads
    what its producers loaded: the span of their data intervals, and the
    newest producer's scheduled time and date.
    """
    meta = pipeline["metadata"]
    annotations = {
        labels.ASSET_RUN: str(number),
        labels.ASSET_SEQUENCES: sequences_annotation(marks),
        labels.TRIGGERED_BY: json.dumps(
            [event.to_api() for event in triggering], separators=(",", ":"), ensure_ascii=False
        ),
    }
    timed = [e for e in triggering if e.scheduled_time]
    newest = max(timed, key=lambda e: parse_time(e.scheduled_time or "")) if timed else None
    if newest is not None and newest.scheduled_time:
        annotations[labels.SCHEDULED_TIME] = newest.scheduled_time
        if newest.scheduled_date:
            annotations[labels.SCHEDULED_DATE] = newest.scheduled_date
    spec: dict[str, Any] = {}
    intervals = [e.data_interval for e in triggering if e.data_interval is not None]
    if intervals:
        start = min(intervals, key=lambda i: parse_time(i.start)).start
        end = max(intervals, key=lambda i: parse_time(i.end)).end
        spec["dataInterval"] = {"start": start, "end": end}
    if schedule.params:
        context = {
            "context.scheduledTime": annotations.get(labels.SCHEDULED_TIME, ""),
            "context.scheduledDate": annotations.get(labels.SCHEDULED_DATE, ""),
            "context.dataIntervalStart": spec.get("dataInterval", {}).get("start", ""),
            "context.dataIntervalEnd": spec.get("dataInterval", {}).get("end", ""),
        }
        spec["params"] = [{"name": p.name, "value": substitute(p.value, context)} for p in schedule.params]
    return pipeline_owned_run(meta, name, spec, {labels.SCHEDULED_BY: label_value(meta["name"])}, annotations)


def asset_run_number(annotations: Mapping[str, str]) -> int | None:
    text = annotations.get(labels.ASSET_RUN)
    return int(text) if text and text.isdigit() else None
