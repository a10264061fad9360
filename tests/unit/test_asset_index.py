"""Which Pipelines an Asset's change wakes, and what a consumer's pass reads of it."""

from __future__ import annotations

from typing import Any

from sluice.engine.assets import AssetRef, asset_object_name
from sluice.reconcilers.asset_index import AssetIndex
from sluice.reconcilers.keys import PipelineKey

SALES = "warehouse.daily_sales"


def consumer(name: str, namespace: str, *on: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"schedule": {"onAssets": list(on)}}}


def asset(namespace: str, name: str, sequence: int = 1, held: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": asset_object_name(name), "namespace": namespace},
        "spec": {"name": held or name},
        "status": {"sequence": sequence},
    }


def test_an_asset_change_wakes_exactly_the_pipelines_scheduled_on_it_in_any_namespace() -> None:
    index = AssetIndex()
    index.saw_pipeline("ADDED", consumer("report", "etl", SALES))
    index.saw_pipeline("ADDED", consumer("audit", "finance", f"etl/{SALES}"))
    index.saw_pipeline("ADDED", consumer("other", "etl", "warehouse.regions"))
    assert set(index.saw_asset("MODIFIED", asset("etl", SALES))) == {
        PipelineKey("etl", "report"),
        PipelineKey("finance", "audit"),
    }
    assert list(index.saw_asset("MODIFIED", asset("finance", SALES))) == []
    index.saw_pipeline("DELETED", consumer("audit", "finance", f"etl/{SALES}"))
    index.saw_pipeline("MODIFIED", {"metadata": {"name": "report", "namespace": "etl"}, "spec": {}})
    assert list(index.saw_asset("MODIFIED", asset("etl", SALES))) == []


def test_a_consumer_reads_the_asset_as_last_seen_and_is_told_why_it_cannot() -> None:
    index = AssetIndex()
    ref = AssetRef.parse(SALES, "etl")
    assert index.view(ref).status is None  # never updated: counts as sequence 0
    list(index.saw_asset("ADDED", asset("etl", SALES, sequence=4)))
    assert index.view(ref).sequence == 4
    list(index.saw_asset("MODIFIED", asset("etl", SALES, held="someone.else")))
    assert "holds asset" in (index.view(ref).unreadable or "")
    list(index.saw_asset("DELETED", asset("etl", SALES)))
    assert index.view(ref).sequence == 0


def test_an_operator_scoped_to_one_namespace_says_it_cannot_read_another() -> None:
    index = AssetIndex("etl")
    message = index.view(AssetRef.parse(f"sales/{SALES}", "etl")).unreadable
    assert message is not None and "watch only namespace etl" in message
    assert index.view(AssetRef.parse(SALES, "etl")).unreadable is None
