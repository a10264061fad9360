"""Kubernetes Events on Pipelines and PipelineRuns, so `kubectl describe` tells the story.

Posting an Event is best effort: a failure to record one must never fail or
delay the reconcile that wanted to record it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import aiohttp

from sluice.api.v1alpha1 import API_VERSION
from sluice.engine.announce import Announcement
from sluice.engine.clock import now_rfc3339
from sluice.engine.naming import short_hash
from sluice.kube import ApiError, KubeClient, events_path

log = logging.getLogger(__name__)
COMPONENT = "sluice-operator"


def event_name(obj: dict[str, Any], reason: str, message: str) -> str:
    """One name per (object, reason, message): the same news told again is
    the same Event with a higher count, as kubectl describe shows it
    ("x5 over 3m"), not one more object per retry.
    """
    meta = obj["metadata"]
    return f"{meta['name'][:200]}.{short_hash(meta['uid'], reason, message)}"


def event_body(obj: dict[str, Any], kind: str, reason: str, message: str) -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(obj, reason, message), "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": obj.get("kind") or "PipelineRun",
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
    """Posts Events, counting repeats on one Event (create, then patch its
    count and lastTimestamp), like client-go's recorder.
    """

    def __init__(self, client: KubeClient, remembered: int = 4096) -> None:
        self.client = client
        self.remembered = remembered
        # Event name -> the count it was last written with (most recent last).
        self.counts: OrderedDict[str, int] = OrderedDict()

    async def record(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        body = event_body(obj, kind, reason, message)
        try:
            await self._record(body)
        except (ApiError, OSError, aiohttp.ClientError) as error:
            log.warning("could not record event %s on %s: %s", reason, obj["metadata"]["name"], error)

    async def _record(self, body: dict[str, Any]) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        count = self.counts.get(name)
        if count is None:
            try:
                await self.client.create(events_path(namespace), body)
                self._remember(name, 1)
                return
            except ApiError as error:
                if not error.already_exists:
                    raise
            # Posted before (by this replica before a restart, or another).
            existing = await self.client.get_optional(f"{events_path(namespace)}/{name}")
            count = int((existing or {}).get("count") or 1)
        patch = {"count": count + 1, "lastTimestamp": body["lastTimestamp"]}
        try:
            await self.client.merge_patch(f"{events_path(namespace)}/{name}", patch)
        except ApiError as error:
            if not error.not_found:
                raise
            # It expired (Events live an hour by default): tell it afresh.
            await self.client.create(events_path(namespace), body)
            count = 0
        self._remember(name, count + 1)

    def _remember(self, name: str, count: int) -> None:
        self.counts[name] = count
        self.counts.move_to_end(name)
        while len(self.counts) > self.remembered:
            self.counts.popitem(last=False)

    async def announce(self, obj: dict[str, Any], announcement: Announcement) -> None:
        await self.record(obj, announcement.type, announcement.reason, announcement.message)
