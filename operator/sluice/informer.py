"""List-then-watch one kind of object, filtered by the API server.

Why not kopf's watches: kopf runs its per-object machinery (body diffing,
cause detection, progress storage) on every event, even for handlers that
only look at the raw event, and it filters labels on the client, so the
operator would receive, decode and drop every pod of the cluster. On the
latency path of every DAG edge that was the largest cost in the profile.
This is the informer of client-go, reduced to what Sluice needs:

* the first list is paged (``limit``/``continue``) and filtered by a label
  selector on the server;
* the watch resumes from the last resourceVersion seen, asks for bookmarks
  (so a quiet stream still advances it) and is ended by the server every
  few minutes, so a silently dead connection cannot last;
* a 410 Gone (the version was compacted away) relists, and objects missing
  from the new list are delivered as deleted, so no deletion is lost in a
  gap;
* events are split on newlines from a byte stream, so an object larger than
  any line buffer (a 5,000-task run's status) is still read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from sluice.kube import KubeClient

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]

LIST_PAGE = 500
WATCH_SECONDS = 300  # the server ends each watch after this; we start another
MAX_BACKOFF = 30.0


class Gone(Exception):
    """The resourceVersion to resume from is too old: list again."""


Tombstone = Callable[[dict[str, Any]], dict[str, Any]]


def identity(obj: dict[str, Any]) -> dict[str, Any]:
    """What a handler needs to forget an object it is told was deleted while
    the watch was down: by default its name, namespace and UID. Kept for
    every object known, so it is small (10,000s of objects).
    """
    meta = obj["metadata"]
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta}}


class Informer:
    """Delivers ADDED/MODIFIED/DELETED events of one collection to a handler."""

    def __init__(
        self,
        client: KubeClient,
        path: str,
        handler: Handler,
        label_selector: str | None = None,
        name: str = "",
        page: int = LIST_PAGE,
        tombstone: Tombstone = identity,
    ) -> None:
        self.client = client
        self.path = path
        self.handler = handler
        self.selector = label_selector
        self.name = name or path
        self.page = page
        self.tombstone = tombstone
        self.resource_version = ""
        # key -> tombstone of every object currently known (for relist diffs).
        self.known: dict[tuple[str, str], dict[str, Any]] = {}
        self.synced = asyncio.Event()

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj["metadata"]
        return (meta.get("namespace") or "", meta["name"])

    def _params(self, **extra: str) -> dict[str, str]:
        params = dict(extra)
        if self.selector:
            params["labelSelector"] = self.selector
        return params

    async def list(self) -> None:
        """One consistent, paged list; objects gone since the last one are deleted."""
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        params = self._params(limit=str(self.page))
        while True:
            page = await self.client.request("GET", self.path, params=params)
            for obj in page.get("items") or ():
                key = self._key(obj)
                seen[key] = self.tombstone(obj)
                self._handle("MODIFIED" if key in self.known else "ADDED", obj)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                self.resource_version = meta.get("resourceVersion") or ""
                break
            params = {**params, "continue": token}
        for key, tombstone in self.known.items():
            if key not in seen:
                self._handle("DELETED", tombstone)
        self.known = seen
        self.synced.set()
        log.info("%s: listed %d objects", self.name, len(seen))

    async def run(self) -> None:
        """List, then watch forever: relist on 410, back off on errors."""
        failures = 0
        listed = self.synced.is_set()  # the caller may have listed first
        while True:
            try:
                if not listed:
                    await self.list()
                    listed = True
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info("%s: resourceVersion %s expired, listing again", self.name, self.resource_version)
                listed = False
            except Exception as error:  # any failure: wait, then resume from where it was
                failures += 1
                delay = min(MAX_BACKOFF, 0.2 * 2 ** (failures - 1))
                log.warning("%s: watch failed (%s); retrying in %.1fs", self.name, error, delay)
                await asyncio.sleep(delay)

    async def _watch(self) -> None:
        params = self._params(
            watch="1",
            allowWatchBookmarks="true",
            timeoutSeconds=str(WATCH_SECONDS),
            resourceVersion=self.resource_version,
        )
        async with self.client.stream(self.path, params, read_timeout=WATCH_SECONDS + 30) as response:
            if response.status == 410:
                raise Gone()
            if response.status >= 300:
                raise RuntimeError(f"{response.status}: {(await response.text())[:300]}")
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._deliver(orjson.loads(line))

    def _deliver(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise RuntimeError(f"watch error: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = version
        if kind == "BOOKMARK" or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = self._key(obj)
        if kind == "DELETED":
            self.known.pop(key, None)
        else:
            self.known[key] = self.tombstone(obj)
        self._handle(kind, obj)

    def _handle(self, kind: str, obj: dict[str, Any]) -> None:
        """A handler's bug must not stop the stream (its position is already past the event)."""
        try:
            self.handler(kind, obj)
        except Exception:
            log.exception("%s: handling %s of %s failed", self.name, kind, obj["metadata"].get("name"))
