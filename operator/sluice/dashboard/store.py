"""What the dashboard shows, kept current by watches (the operator's own
informers): every Pipeline and PipelineRun it may read, a version that moves
on each change, and each run's view cached by resourceVersion, so a page of
1,000 runs does not re-read 1,000 statuses on every change.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from sluice.informer import Informer
from sluice.kube import KubeClient
from sluice.views.run_view import RunView, run_view

GROUP = "/apis/sluice.dev/v1alpha1"
Key = tuple[str, str]


class Store:
    def __init__(self, client: KubeClient, namespace: str | None) -> None:
        self.client = client
        self.namespace = namespace
        self.pipelines: dict[Key, dict[str, Any]] = {}
        self.runs: dict[Key, dict[str, Any]] = {}
        self.version = 0
        self._changed = asyncio.Event()
        self._views: dict[Key, tuple[str, RunView]] = {}

    @staticmethod
    def _key(obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return meta.get("namespace") or "", meta["name"]

    def _saw(self, into: dict[Key, dict[str, Any]]) -> Any:
        def handle(kind: str, obj: dict[str, Any]) -> None:
            key = self._key(obj)
            if kind == "DELETED":
                into.pop(key, None)
                self._views.pop(key, None)
            else:
                into[key] = obj
            self.version += 1
            self._changed.set()
            self._changed = asyncio.Event()

        return handle

    async def start(self) -> list[asyncio.Task[None]]:
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        informers = [
            Informer(self.client, f"{GROUP}{scope}/pipelines", self._saw(self.pipelines), name="pipelines"),
            Informer(
                self.client,
                f"{GROUP}{scope}/pipelineruns",
                self._saw(self.runs),
                name="pipelineruns",
                page=250,
            ),
        ]
        for informer in informers:
            await informer.list()
        return [asyncio.create_task(informer.run()) for informer in informers]

    async def changed_after(self, version: int, seconds: float) -> bool:
        """Wait until the version moves past ``version``; False on timeout."""
        if self.version != version:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def view(self, key: Key) -> RunView | None:
        obj = self.runs.get(key)
        if obj is None:
            return None
        version = obj["metadata"].get("resourceVersion", "")
        cached = self._views.get(key)
        if cached is None or cached[0] != version:
            cached = (version, run_view(obj))
            self._views[key] = cached
        return cached[1]

    def runs_by_pipeline(self, namespace: str | None = None) -> dict[Key, list[RunView]]:
        grouped: dict[Key, list[RunView]] = defaultdict(list)
        for key in self.runs:
            if namespace is not None and key[0] != namespace:
                continue
            view = self.view(key)
            if view is not None:
                grouped[(key[0], view.pipeline or "(none)")].append(view)
        return grouped
