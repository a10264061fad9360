"""What the operator knows of Assets, and which Pipelines wait on each.

Filled from the Assets' and Pipelines' watches: an update recorded on an
Asset wakes exactly the Pipelines scheduled on it, and their passes read
the Asset from here, with no GET. A stale copy is harmless: consumers
count by sequence numbers, so a late view only delays a run until the
next event, and cannot make a second one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from sluice.api.v1alpha1 import AssetSpec, AssetStatus
from sluice.engine.assets import AssetRef, AssetView
from sluice.reconcilers.keys import PipelineKey

Where = tuple[str, str]  # (namespace, Asset object name)


class AssetIndex:
    def __init__(self, watched_namespace: str = "") -> None:
        self.watched = watched_namespace  # "": every namespace
        self.assets: dict[Where, Mapping[str, Any]] = {}
        self.consumers: dict[PipelineKey, frozenset[Where]] = {}

    # --- from the watches ---------------------------------------------------------

    def saw_asset(self, kind: str, obj: Mapping[str, Any]) -> Iterator[PipelineKey]:
        """Keep (or forget) an Asset; yield the Pipelines waiting on it."""
        meta = obj["metadata"]
        where = (meta["namespace"], meta["name"])
        if kind == "DELETED":
            self.assets.pop(where, None)
        else:
            self.assets[where] = {
                "uid": meta.get("uid"),
                "spec": obj.get("spec") or {},
                "status": obj.get("status") or {},
            }
        return (key for key, wanted in self.consumers.items() if where in wanted)

    def saw_pipeline(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        key = PipelineKey(meta["namespace"], meta["name"])
        schedule = (obj.get("spec") or {}).get("schedule") or {}
        refs = schedule.get("onAssets") if kind != "DELETED" else None
        if not refs or not isinstance(refs, list):
            self.consumers.pop(key, None)
            return
        parsed = (AssetRef.parse(str(text), key.namespace) for text in refs)
        self.consumers[key] = frozenset((ref.namespace, ref.object_name) for ref in parsed)

    # --- for a Pipeline's pass ------------------------------------------------------

    def view(self, ref: AssetRef) -> AssetView:
        if self.watched and ref.namespace != self.watched:
            return AssetView(
                unreadable=(
                    f'asset "{ref.text}" is in namespace {ref.namespace}, but this operator is installed '
                    f"to watch only namespace {self.watched}"
                )
            )
        held = self.assets.get((ref.namespace, ref.object_name))
        if held is None:
            return AssetView()  # never updated yet
        try:
            spec = AssetSpec.model_validate(held["spec"])
            status = AssetStatus.model_validate(held["status"])
        except ValidationError as error:
            return AssetView(unreadable=f"the Asset object for {ref.text} is invalid: {error}")
        if spec.name != ref.asset:
            return AssetView(
                unreadable=f'the Asset object {ref.object_name} holds asset "{spec.name}", not "{ref.asset}"'
            )
        return AssetView(spec, status, uid=held.get("uid"))

    def views(self, namespace: str, texts: list[str]) -> dict[str, AssetView]:
        return {text: self.view(AssetRef.parse(text, namespace)) for text in texts}
