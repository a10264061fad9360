"""Deterministic, bounded names and label values for the objects a run owns.

Why deterministic: a reconcile may be repeated at any time (operator restart,
lost response), so creating a task's pod must be idempotent: the second
create of the same attempt's pod hits AlreadyExists instead of starting the
task twice. The run's UID is part of the hash, so a run deleted and re-created
under the same name never adopts the old run's lingering pods.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

MAX_NAME = 63
HASH_LENGTH = 8


def short_hash(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:HASH_LENGTH]


def _bounded(prefix: str, suffix: str, limit: int = MAX_NAME) -> str:
    room = limit - len(suffix) - 1
    head = prefix[:room].rstrip("-.")
    return f"{head}-{suffix}"


def attempt_name(
    run_name: str, run_uid: str, task: str, attempt: int = 0, instance: int | None = None
) -> str:
    """The pod of one attempt of one task: ``<run>-<task>-<hash>``, cut to 63
    characters (a valid pod name and label value); an instance of a
    fanned-out task: ``<run>-<task>-<index>-<hash>``.

    Each retry of a task is a new pod: the attempt number joins the hash. An
    instance's key joins it as ``task[index]``, which no task name can be,
    so it never meets a task named ``<task>-<index>``.
    """
    key = task if instance is None else f"{task}[{instance}]"
    parts = (run_uid, key) if attempt == 0 else (run_uid, key, str(attempt))
    prefix = f"{run_name}-{task}" if instance is None else f"{run_name}-{task}-{instance}"
    return _bounded(prefix, short_hash(*parts))


def label_value(value: str) -> str:
    """A label value for any name: as is when it fits, else cut with a hash."""
    if len(value) <= MAX_NAME:
        return value
    return _bounded(value, short_hash(value))


def claim_name(run_name: str, run_uid: str) -> str:
    """The run's workspace PersistentVolumeClaim: ``<run>-workspace-<hash>``."""
    return _bounded(f"{run_name}-workspace", short_hash(run_uid, "workspace"))


def scheduled_run_name(pipeline: str, moment: datetime) -> str:
    """``<pipeline>-<YYYYMMDDHHMM>`` in UTC: the same scheduled instant always
    gives the same name, so a restart or a second replica cannot start it
    twice. A pipeline name too long for that within 63 characters (a label
    value) is cut and followed by a hash of the whole name, so two pipelines
    sharing a long prefix never share a run name.
    """
    stamp = moment.astimezone(UTC).strftime("%Y%m%d%H%M")
    if len(pipeline) + 1 + len(stamp) <= MAX_NAME:
        return f"{pipeline}-{stamp}"
    return _bounded(pipeline, f"{short_hash(pipeline)}-{stamp}")


def backfill_run_name(backfill: str, backfill_uid: str, moment: datetime) -> str:
    """``<backfill>-<hash>-<YYYYMMDDHHMM>``: one name per interval of one
    Backfill object (a Backfill deleted and made again under the same name
    starts afresh), within 63 characters.
    """
    stamp = moment.astimezone(UTC).strftime("%Y%m%d%H%M")
    return _bounded(backfill, f"{short_hash(backfill_uid)}-{stamp}")
