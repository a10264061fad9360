"""``maxConcurrentRuns``: may a run of a pipeline start now? (pure).

Runs are admitted in creation order: a run waits while the active runs plus
the runs created before it that are still waiting fill the limit, so a burst
of runs starts oldest first and a newer run never overtakes an older one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.api import labels
from sluice.api.v1alpha1 import FINISHED_RUN_PHASES

# A waiting run is woken by another run finishing; this re-check is a safety net.
RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class PeerRun:
    """What admission needs to know of another run in the namespace."""

    name: str
    created: str
    pipeline: str | None
    finished: bool
    started: bool
    rerun_of: str | None = None
    # What a Backfill reads of the runs of its pipeline.
    scheduled_time: str | None = None
    backfill_uid: str | None = None
    phase: str | None = None
    cancel_requested: bool = False


def peer_run(obj: Mapping[str, Any]) -> PeerRun:
    """A PipelineRun object as admission sees it: its pipeline is the one its
    status recorded, or before that the one its spec names.
    """
    meta, status, spec = obj["metadata"], obj.get("status") or {}, obj.get("spec") or {}
    pipeline = status.get("pipelineName") or (spec.get("pipelineRef") or {}).get("name")
    return PeerRun(
        name=meta["name"],
        created=meta.get("creationTimestamp") or "",
        pipeline=pipeline,
        finished=status.get("phase") in FINISHED_RUN_PHASES,
        started=status.get("pipelineSpec") is not None,
        rerun_of=(spec.get("rerunOf") or {}).get("name"),
        scheduled_time=(meta.get("annotations") or {}).get(labels.SCHEDULED_TIME),
        backfill_uid=(meta.get("labels") or {}).get(labels.BACKFILL_UID),
        phase=status.get("phase"),
        cancel_requested=bool(spec.get("cancelled")),
    )


def admission_wait(
    name: str, created: str, pipeline: str, limit: int, peers: Iterable[PeerRun]
) -> str | None:
    """None if the run may start now; else the message saying why it waits."""
    mine = (created, name)
    active = ahead = 0
    for other in peers:
        if other.name == name or other.pipeline != pipeline or other.finished:
            continue
        if other.started:
            active += 1
        elif (other.created, other.name) < mine:
            ahead += 1
    if active + ahead < limit:
        return None
    message = f'waiting: {active} of {limit} allowed runs of pipeline "{pipeline}" are active'
    if ahead:
        message += f", {ahead} waiting run(s) first"
    return message
