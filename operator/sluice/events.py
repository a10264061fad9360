"""Kubernetes Events on Pipelines and PipelineRuns, so `kubectl describe` tells the story.

Posting an Event is best effort: a failure to record one must never fail or
delay the reconcile that wanted to record it.
"""

from __future__ import annotations

import logging
from typing import Any

from sluice.api.v1alpha1 import API_VERSION
from sluice.engine.announce import Announcement
from sluice.engine.clock import now_rfc3339
from sluice.engine.naming import short_hash
from sluice.kube import ApiError, KubeClient, events_path

log = logging.getLogger(__name__)
COMPONENT = "sluice-operator"


def event_body(run: dict[str, Any], kind: str, reason: str, message: str) -> dict[str, Any]:
    meta = run["metadata"]
    stamp = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name'][:200]}.{short_hash(meta['uid'], reason, message, stamp)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": run.get("kind") or "PipelineRun",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def record(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        try:
            await self.client.create(
                events_path(obj["metadata"]["namespace"]), event_body(obj, kind, reason, message)
            )
        except (ApiError, OSError) as error:
            log.warning("could not record event %s on %s: %s", reason, obj["metadata"]["name"], error)

    async def announce(self, obj: dict[str, Any], announcement: Announcement) -> None:
        await self.record(obj, announcement.type, announcement.reason, announcement.message)
