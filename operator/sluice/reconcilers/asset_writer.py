"""Records asset updates on their Asset objects (the I/O of engine/assets.py).

Called by a run's pass before the status write that lists the updates as
recorded. Each write is conditional on the Asset's resourceVersion, so two
runs updating one asset at once cannot lose either's update: the loser's
pass meets a conflict and runs again, finding the winner's update there.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from sluice import metrics
from sluice.api import labels
from sluice.api.v1alpha1 import API_VERSION, AssetSpec, AssetStatus, PipelineRunStatus
from sluice.engine.assets import AssetUpdate, asset_object_name, recorded_status
from sluice.kube import ApiError, KubeClient, NameTaken, asset_path


def without_records(
    status: PipelineRunStatus | None, refused: Sequence[tuple[AssetUpdate, ApiError]]
) -> PipelineRunStatus | None:
    """The planned status, not listing the refused updates as recorded (so
    the next pass tries them again).
    """
    if status is None:
        return None
    gone = {(update.event.task, update.asset) for update, _ in refused}
    kept = [r for r in status.assets_updated or () if (r.task, r.asset) not in gone]
    return status.model_copy(update={"assets_updated": kept or None})


class AssetWriter:
    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def record(
        self, namespace: str, updates: Sequence[AssetUpdate]
    ) -> list[tuple[AssetUpdate, ApiError]]:
        """Record ``updates`` (made in ``namespace``), one write per asset.
        Returns the updates refused for good (RBAC, a name held by another
        asset, a rejected write) with the refusal: the run goes on without
        them and shows the refusal, instead of stopping on an asset. Any
        other failure raises (the pass is retried).
        """
        refused = []
        ordered = sorted(updates, key=lambda u: u.asset)
        for asset, group in groupby(ordered, key=lambda u: u.asset):
            batch = list(group)
            try:
                await self._record_one(namespace, asset, batch)
            except ApiError as error:
                if not error.permanent:
                    raise
                refused += [(update, error) for update in batch]
        return refused

    async def _record_one(self, namespace: str, asset: str, updates: list[AssetUpdate]) -> None:
        found = await self._asset(namespace, asset)
        status = AssetStatus.model_validate(found.get("status") or {})
        added = 0
        for update in updates:
            recorded = recorded_status(status, update)
            if recorded is not None:
                status, added = recorded, added + 1
        if not added:
            return  # recorded by an earlier pass whose status write was lost
        meta = found["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status.to_api()}
        await self.client.merge_patch(asset_path(namespace, meta["name"], "status"), body)
        metrics.ASSET_UPDATES.inc(added)

    async def _asset(self, namespace: str, asset: str) -> dict[str, Any]:
        """The asset's object, created on its first update."""
        name = asset_object_name(asset)
        path = asset_path(namespace, name)
        found = await self.client.get_optional(path)
        if found is None:
            body = {
                "apiVersion": API_VERSION,
                "kind": "Asset",
                "metadata": {"name": name, "labels": {labels.MANAGED_BY: labels.MANAGER}},
                "spec": {"name": asset},
            }
            try:
                found = await self.client.create(asset_path(namespace), body)
            except ApiError as error:
                if not error.already_exists:
                    raise
                found = await self.client.get(path)
        held = AssetSpec.model_validate(found.get("spec") or {}).name
        if held != asset:
            raise NameTaken(
                "POST",
                path,
                f'the Asset object {name} holds asset "{held}", not "{asset}": rename one of the assets',
            )
        return found
