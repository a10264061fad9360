"""Data assets: what a producer's success records, and when a consumer runs.

A task that ``updatesAssets`` records one update on each asset's ``Asset``
object each time it succeeds in a run; a Pipeline scheduled ``onAssets``
gets one run once every listed asset has had an update since the run
before. Both halves are counted, never inferred from runs (which history
limits and TTLs delete), so they survive restarts:

* An update carries an identity (the run's UID and the task): recording
  it again after a lost status write finds it and adds nothing. The run's
  status then lists it (``assetsUpdated``), so no later pass records it.
* An asset's updates are numbered (``status.sequence``); a consumer keeps
  per asset the number its last run started from. Its runs are numbered
  too, and named by that number, so a pass that created a run but lost its
  status write finds the run (by name) on the next pass and takes what that
  run consumed from its annotation, instead of starting a second one.

Everything here is pure: the reconcilers read the objects and carry out
what these functions decide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from sluice.api.schema_hints import DNS_SUBDOMAIN_PATTERN
from sluice.api.v1alpha1 import (
    ASSET_EVENTS_KEPT,
    ASSET_IDS_KEPT,
    AssetEvent,
    AssetSpec,
    AssetStatus,
    AssetUpdateRecord,
    AssetWatermark,
    PipelineRunStatus,
    PipelineSpec,
    TaskSpec,
)
from sluice.engine.clock import parse_time
from sluice.engine.naming import MAX_NAME, short_hash
from sluice.engine.params import TRIGGER_FIELDS, TRIGGERED_BY_PREFIX, asset_key, trigger_variables

OBJECT_NAME_MAX = 253
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
_NOT_DNS = re.compile(r"[^a-z0-9.-]+")


def asset_object_name(asset: str) -> str:
    """The name of the ``Asset`` object that holds ``asset``'s updates.

    A name that is already a valid object name is used as is; any other
    (``warehouse.daily_sales``: an underscore, upper case) is lowered, its
    other characters turned to ``-``, and a hash of the exact name added, so
    two names that differ only in case or punctuation never share an object.
    """
    if len(asset) <= OBJECT_NAME_MAX and _DNS_SUBDOMAIN.match(asset):
        return asset
    cleaned = _NOT_DNS.sub("-", asset.lower()).strip("-.") or "asset"
    head = cleaned[: OBJECT_NAME_MAX - 9].rstrip("-.")
    return f"{head}-{short_hash(asset)}"


@dataclass(frozen=True)
class AssetRef:
    """An ``onAssets`` entry: an asset of the consumer's namespace or, written
    ``NAMESPACE/ASSET``, of another one that shares it.
    """

    text: str
    namespace: str
    asset: str

    @property
    def object_name(self) -> str:
        return asset_object_name(self.asset)

    @classmethod
    def parse(cls, text: str, home: str) -> AssetRef:
        namespace, _, asset = text.rpartition("/")
        return cls(text, namespace or home, asset)


@dataclass(frozen=True)
class AssetView:
    """An Asset object as a consumer's pass reads it; ``status`` None when it
    does not exist yet (never updated), ``unreadable`` when it cannot be used.
    """

    spec: AssetSpec | None = None
    status: AssetStatus | None = None
    unreadable: str | None = None
    uid: str | None = None

    @property
    def sequence(self) -> int:
        return (self.status.sequence or 0) if self.status else 0


def shared_with(ref: AssetRef, view: AssetView, consumer_namespace: str) -> str | None:
    """Why a consumer may not read this asset, or None when it may: its own
    namespace's always, another's only when that Asset lists it.
    """
    if ref.namespace == consumer_namespace or view.spec is None:
        return None
    allowed = view.spec.allowed_namespaces or ()
    if consumer_namespace in allowed or "*" in allowed:
        return None
    return (
        f'asset "{ref.asset}" in namespace {ref.namespace} is not shared with namespace '
        f"{consumer_namespace}: its Asset object must list it in spec.allowedNamespaces"
    )


# --- producers ----------------------------------------------------------------------


@dataclass(frozen=True)
class AssetUpdate:
    """One update to record: ``event`` without its sequence, which the Asset assigns."""

    asset: str
    event: AssetEvent

    @property
    def identity(self) -> tuple[str | None, str]:
        return self.event.run_uid, self.event.task


def updates_due(
    status: PipelineRunStatus, namespace: str, run: str, run_uid: str, now: str
) -> tuple[AssetUpdate, ...]:
    """The updates a run's status calls for and has not recorded: one per
    asset of each task that succeeded in this run. A task a rerun reused
    (reason Reused) succeeded in the run it came from, which recorded it.
    """
    spec = status.pipeline_spec
    if spec is None:
        return ()
    declared = {task.name: task.updates_assets for task in _all_tasks(spec) if task.updates_assets}
    if not declared:
        return ()
    done = {(record.task, record.asset) for record in status.assets_updated or ()}
    updates = []
    for task in status.tasks or ():
        if task.phase != "Succeeded" or task.reason == "Reused" or task.name not in declared:
            continue
        for asset in declared[task.name] or ():
            if (task.name, asset) in done:
                continue
            event = AssetEvent(
                sequence=1,  # placeholder: the Asset numbers it when recording
                time=task.completion_time or now,
                namespace=namespace,
                run=run,
                run_uid=run_uid,
                pipeline=status.pipeline_name,
                task=task.name,
                scheduled_time=status.scheduled_time,
                scheduled_date=status.scheduled_date,
                data_interval=status.data_interval,
            )
            updates.append(AssetUpdate(asset, event))
    return tuple(updates)


def with_recorded(status: PipelineRunStatus, updates: Sequence[AssetUpdate]) -> PipelineRunStatus:
    """``status`` listing ``updates`` as recorded."""
    records = [
        *(status.assets_updated or ()),
        *(AssetUpdateRecord(task=u.event.task, asset=u.asset) for u in updates),
    ]
    return status.model_copy(update={"assets_updated": records})


def update_id(update: AssetUpdate) -> str:
    return short_hash(update.event.run_uid or "", update.event.task)


def recorded_status(current: AssetStatus, update: AssetUpdate) -> AssetStatus | None:
    """The Asset's status with ``update`` recorded as its next update, or None
    when it is already there (a pass repeated after a lost status write).
    The newest updates are kept in full (consumers need them, and the object
    must stay small); the identities of many more are kept as short hashes,
    so a write retried after a long delay still finds its update.
    """
    identity = update_id(update)
    events = list(current.events or ())
    if identity in (current.recorded or ()) or any((e.run_uid, e.task) == update.identity for e in events):
        return None
    sequence = (current.sequence or 0) + 1
    event = update.event.model_copy(update={"sequence": sequence})
    return AssetStatus(
        sequence=sequence,
        last_update_time=event.time,
        last_updated_by=f"{event.run}/{event.task}",
        events=[*events, event][-ASSET_EVENTS_KEPT:],
        recorded=[*(current.recorded or ()), identity][-ASSET_IDS_KEPT:],
    )


def _all_tasks(spec: PipelineSpec) -> Iterable[TaskSpec]:
    return [*spec.tasks, *(spec.finally_ or ())]


# --- consumers ----------------------------------------------------------------------


def asset_run_name(pipeline: str, number: int) -> str:
    """``<pipeline>-asset-<n>``: the n-th run its asset updates started, so a
    repeated pass meets the run it already made instead of making another.
    """
    suffix = f"asset-{number}"
    if len(pipeline) + 1 + len(suffix) <= MAX_NAME:
        return f"{pipeline}-{suffix}"
    room = MAX_NAME - len(suffix) - len(short_hash(pipeline)) - 2
    return f"{pipeline[:room].rstrip('-.')}-{short_hash(pipeline)}-{suffix}"


def baseline(view: AssetView, counts_from: str | None) -> int:
    """Where a consumer starts counting an asset it has not counted before:
    updates made at or after ``counts_from`` (its creation, for a Pipeline
    created with the asset in its schedule) are new to it, so one made while
    the operator was down still triggers; otherwise (an asset added later,
    or one that could not be read until now) only updates from now on count.
    Sequences follow recording order, not completion time: the earliest
    sequence completed since is where counting starts.
    """
    if counts_from is None or view.status is None:
        return view.sequence
    since = parse_time(counts_from)
    after = [e.sequence for e in view.status.events or () if parse_time(e.time) >= since]
    return min(after) - 1 if after else view.sequence


def watermarks(
    refs: Sequence[AssetRef],
    current: Sequence[AssetWatermark],
    views: Mapping[str, AssetView],
    consumer_namespace: str,
    counts_from: str | None,
) -> list[AssetWatermark]:
    """One watermark per listed asset, in the schedule's order: its consumed
    sequence kept (or its baseline for a new one), its newest sequence seen,
    and why it cannot be read if it cannot. Nothing is counted for an asset
    that cannot be read: its baseline is taken once it can. An Asset object
    deleted and made again (another UID) counts afresh from its first update.
    """
    held = {mark.name: mark for mark in current}
    marks = []
    for ref in refs:
        view = views.get(ref.text, AssetView())
        problem = view.unreadable or shared_with(ref, view, consumer_namespace)
        old = held.get(ref.text)
        consumed = old.consumed_sequence if old is not None else None
        uid = old.uid if old is not None else None
        if problem is None:
            replaced = uid is not None and view.uid is not None and uid != view.uid
            if replaced or (consumed is not None and consumed > view.sequence):
                consumed = 0
            elif consumed is None:
                consumed = baseline(view, counts_from)
            uid = view.uid or uid
        marks.append(
            AssetWatermark(
                name=ref.text,
                uid=uid,
                consumed_sequence=consumed,
                latest_sequence=None if problem else view.sequence,
                message=problem,
            )
        )
    return marks


def _pending(mark: AssetWatermark) -> bool:
    """Updated since the last run, and readable."""
    return (
        mark.message is None
        and mark.consumed_sequence is not None
        and ((mark.latest_sequence or 0) > mark.consumed_sequence)
    )


def all_updated(marks: Sequence[AssetWatermark]) -> bool:
    """Every asset had an update since the last run (and may be read)."""
    return bool(marks) and all(_pending(m) for m in marks)


def waiting_for(marks: Sequence[AssetWatermark]) -> list[str]:
    return [m.name for m in marks if m.message is None and not _pending(m)]


def consumed(marks: Sequence[AssetWatermark]) -> list[AssetWatermark]:
    """The watermarks once a run has started from the newest updates."""
    return [m.model_copy(update={"consumed_sequence": m.latest_sequence or 0}) for m in marks]


def sequences_annotation(marks: Sequence[AssetWatermark]) -> str:
    return json.dumps({m.name: m.latest_sequence or 0 for m in marks}, sort_keys=True, separators=(",", ":"))


def read_sequences(text: str | None) -> dict[str, int] | None:
    """What an asset run's annotation says it consumed; None if unreadable."""
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not all(isinstance(v, int) for v in parsed.values()):
        return None
    return {str(k): v for k, v in parsed.items()}


def adopt_consumed(marks: Sequence[AssetWatermark], sequences: Mapping[str, int]) -> list[AssetWatermark]:
    """The watermarks as a run already made consumed them (its pass lost
    its status write): never more than that run saw, so updates made since
    still count for the next run.
    """
    return [
        m.model_copy(update={"consumed_sequence": max(m.consumed_sequence or 0, sequences.get(m.name, 0))})
        for m in marks
    ]


def triggering_events(
    refs: Sequence[AssetRef], views: Mapping[str, AssetView], marks: Sequence[AssetWatermark]
) -> list[AssetEvent]:
    """Every update a run starts from, oldest first per asset, tagged with
    the ``onAssets`` entry it answers: all those since the last run (as far
    as the Asset keeps them), not only the newest, so a run that gathers
    several producer runs (a backfill, a held round) knows each of them.
    """
    window = {m.name: (m.consumed_sequence or 0, m.latest_sequence or 0) for m in marks}
    found = []
    for ref in refs:
        view = views.get(ref.text)
        low, high = window.get(ref.text, (0, 0))
        for event in (view.status.events if view and view.status else None) or ():
            if low < event.sequence <= high:
                found.append(event.model_copy(update={"asset": ref.text}))
    return found


def triggered_variables(spec: PipelineSpec, events: Sequence[AssetEvent]) -> dict[str, str]:
    """``$(context.triggeredBy)`` (every triggering update, as JSON) and
    ``$(context.triggeredBy.ASSET.FIELD)`` for each asset the schedule waits
    on: the update that started this run, or empty for a run it did not
    start (made by hand, by cron, or before the asset had updates).
    """
    variables = dict.fromkeys(trigger_variables(spec), "")
    for event in events:
        prefix = f"{TRIGGERED_BY_PREFIX}{asset_key(event.asset or '')}."
        for field, attribute in TRIGGER_FIELDS.items():
            value = getattr(event, attribute)
            variables[prefix + field] = "" if value is None else str(value)
        if event.data_interval is not None:
            variables[prefix + "dataIntervalStart"] = event.data_interval.start
            variables[prefix + "dataIntervalEnd"] = event.data_interval.end
    listed = [event.to_api() for event in events]
    variables["context.triggeredBy"] = json.dumps(listed, separators=(",", ":"), ensure_ascii=False)
    return variables


def parse_triggered_by(text: str | None) -> list[AssetEvent] | None:
    """The updates an asset run's annotation names; None if absent or unreadable."""
    if not text:
        return None
    try:
        parsed = json.loads(text)
        return [AssetEvent.model_validate(item) for item in parsed] if isinstance(parsed, list) else None
    except (ValueError, ValidationError):
        return None
