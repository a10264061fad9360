"""Data-aware schedules: a producer's task updates assets, a consumer scheduled
on them gets exactly one run per round of updates, loading the producer's day,
whatever instant the operator is killed at during the hand-off.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from kubernetes import client

from sluice.engine.assets import asset_object_name
from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.test_metrics import scrape, try_scrape

pytestmark = pytest.mark.integration

SALES = "warehouse.daily_sales"
REGIONS = "warehouse.regions"
DAY = {"start": "2026-11-23T00:00:00Z", "end": "2026-11-24T00:00:00Z"}


def producer(updates: list[str]) -> dict[str, Any]:
    return pipeline("load-warehouse", [task("extract"), task("load", "extract", updatesAssets=updates)])


def consumer(name: str = "sales-report", on: list[str] | None = None, **schedule: Any) -> dict[str, Any]:
    args = [
        "--day=$(context.scheduledDate)",
        f"--by=$(context.triggeredBy.{SALES}.run)",
        f"--from=$(context.triggeredBy.{SALES}.dataIntervalStart)",
    ]
    return pipeline(
        name,
        [task("report", args=args)],
        schedule={"onAssets": on or [SALES, REGIONS], **schedule},
    )


def asset_runs(kube: Kube, namespace: str, name: str = "sales-report") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.custom.list_namespaced_custom_object(
        "sluice.dev", "v1alpha1", namespace, "pipelineruns", label_selector=f"sluice.dev/scheduled-by={name}"
    )["items"]
    return sorted(items, key=lambda r: r["metadata"]["name"])


def asset(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "assets", asset_object_name(name)
        )
        return found
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def sequence(kube: Kube, namespace: str, name: str) -> int:
    found = asset(kube, namespace, name)
    return int(((found or {}).get("status") or {}).get("sequence") or 0)


def pipeline_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.custom.get_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelines", name)
    return dict(obj.get("status") or {})


def pipeline_events(kube: Kube, namespace: str, name: str, reason: str) -> list[Any]:
    def posted() -> list[Any] | None:
        selector = f"involvedObject.name={name},involvedObject.kind=Pipeline,reason={reason}"
        items: list[Any] = kube.core.list_namespaced_event(namespace, field_selector=selector).items
        return items or None

    return wait_for(f"a {reason} Event on pipeline {name}", posted, timeout=30)


def watermark(kube: Kube, namespace: str, name: str, of: str) -> dict[str, Any]:
    marks = pipeline_status(kube, namespace, name).get("assets") or ()
    return next((m for m in marks if m["name"] == of), {})


def test_a_producer_updating_two_assets_starts_the_consumer_once_with_the_producers_day(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    before = wait_for("the metrics endpoint", lambda: try_scrape(operator.metrics_port))
    kube.apply(namespace, consumer(), producer([SALES, REGIONS]))
    wait_for(
        "the consumer to count its assets",
        lambda: len(pipeline_status(kube, namespace, "sales-report").get("assets") or ()) == 2,
    )
    kube.apply(namespace, run("daily-1", "load-warehouse", dataInterval=DAY))
    produced = kube.wait_run(namespace, "daily-1")["status"]
    assert produced["phase"] == "Succeeded"

    wait_for("the consumer's run", lambda: asset_runs(kube, namespace) or None)
    done = kube.wait_run(namespace, "sales-report-asset-1")
    assert done["status"]["phase"] == "Succeeded"
    # It loads what its producer loaded: the same data interval and day.
    assert done["status"]["dataInterval"] == DAY
    assert done["status"]["scheduledDate"] == produced["scheduledDate"]
    assert done["status"]["scheduledTime"] == produced["scheduledTime"]
    assert [e["run"] for e in done["status"]["triggeredBy"]] == ["daily-1", "daily-1"]
    [pod] = kube.pods(namespace, "sales-report-asset-1")
    day = produced["scheduledDate"]
    assert pod.spec.containers[0].args == [f"--day={day}", "--by=daily-1", f"--from={DAY['start']}"]
    for name in (SALES, REGIONS):
        found = asset(kube, namespace, name)
        assert found is not None and found["spec"]["name"] == name
        assert found["status"]["sequence"] == 1
        assert found["status"]["lastUpdatedBy"] == "daily-1/load"
    assert {(r["task"], r["asset"]) for r in kube.run(namespace, "daily-1")["status"]["assetsUpdated"]} == {
        ("load", SALES),
        ("load", REGIONS),
    }
    [announced] = pipeline_events(kube, namespace, "sales-report", "AssetsUpdated")
    assert "daily-1/load" in announced.message

    # One asset updated again is not a round: the consumer counts it and waits.
    kube.apply(namespace, pipeline("sales-only", [task("load", updatesAssets=[SALES])]))
    kube.apply(namespace, run("fix-sales", "sales-only"))
    wait_for(
        "the consumer to see the second update",
        lambda: watermark(kube, namespace, "sales-report", SALES).get("latestSequence") == 2,
    )
    assert [r["metadata"]["name"] for r in asset_runs(kube, namespace)] == ["sales-report-asset-1"]
    condition = next(
        c
        for c in pipeline_status(kube, namespace, "sales-report")["conditions"]
        if c["type"] == "AssetsReadable"
    )
    assert condition["status"] == "True" and REGIONS in condition["message"]
    after = scrape(operator.metrics_port)
    grew = {
        name: after.get(name, 0) - before.get(name, 0)
        for name in ("sluice_asset_updates_total", "sluice_asset_runs_total")
    }
    assert grew == {"sluice_asset_updates_total": 3, "sluice_asset_runs_total": 1}


def test_producers_updating_one_asset_at_once_each_record_exactly_one_update(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """Writes to an Asset are conditional: a producer that loses the race
    records its update on the next pass, and none is lost or doubled.
    """
    kube.apply(namespace, pipeline("loader", [task("load", updatesAssets=[SALES])]))
    names = [f"load-{i}" for i in range(8)]
    kube.apply(namespace, *(run(name, "loader") for name in names))
    for name in names:
        assert kube.wait_run(namespace, name)["status"]["phase"] == "Succeeded"
    found = asset(kube, namespace, SALES)
    assert found is not None
    assert found["status"]["sequence"] == len(names)
    assert sorted(e["run"] for e in found["status"]["events"]) == sorted(names)
    assert sorted(e["sequence"] for e in found["status"]["events"]) == list(range(1, len(names) + 1))


@pytest.mark.allows_forbidden
def test_an_asset_write_refused_for_good_does_not_stop_the_run_and_is_recorded_once_possible(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """The Asset's object name is held by another asset: the producer run
    still finishes, shows why its update is not recorded, and records it
    once the name is free.
    """
    imposter = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Asset",
        "metadata": {"name": asset_object_name(SALES)},
        "spec": {"name": "someone.else"},
    }
    kube.apply(
        namespace, imposter, pipeline("loader", [task("load", updatesAssets=[SALES]), task("after", "load")])
    )
    kube.apply(namespace, run("load-1", "loader"))
    assert kube.wait_run(namespace, "load-1")["status"]["phase"] == "Succeeded"

    def blocked() -> dict[str, Any] | None:
        conditions = (kube.run(namespace, "load-1").get("status") or {}).get("conditions") or ()
        return next((c for c in conditions if c["type"] == "Blocked" and c["status"] == "True"), None)

    shown = wait_for("the run to show the refused update", blocked)
    assert "holds asset" in shown["message"]
    assert not kube.run(namespace, "load-1")["status"].get("assetsUpdated")

    kube.kubectl("delete", "asset", asset_object_name(SALES), "-n", namespace)
    wait_for("the update to be recorded", lambda: sequence(kube, namespace, SALES) == 1, timeout=60)
    wait_for(
        "the run to list it", lambda: kube.run(namespace, "load-1")["status"].get("assetsUpdated"), timeout=30
    )
    assert asset(kube, namespace, SALES)["spec"]["name"] == SALES  # type: ignore[index]


CRASH_POINTS = ["asset-recorded", "run-status-written", "asset-run-created", "pipeline-status-written"]


@pytest.mark.cluster_scope_only
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_an_operator_killed_at_any_step_of_the_hand_off_neither_loses_nor_doubles_the_consumer_run(
    kube: Kube, namespace: str, operator: OperatorProcess, point: str, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "crashed"
    operator.stop()
    operator.env.update({"SLUICE_CRASH_AT": point, "SLUICE_CRASH_MARKER": str(marker)})
    try:
        operator.start()
        kube.apply(namespace, consumer(), producer([SALES, REGIONS]))
        kube.apply(namespace, run("daily-1", "load-warehouse", dataInterval=DAY))
        assert operator.process is not None
        wait_for(f"the operator to kill itself at {point}", lambda: operator.process.poll() is not None)
        assert marker.exists()
        operator.start()  # the marker is there: it passes the point this time
        assert kube.wait_run(namespace, "daily-1")["status"]["phase"] == "Succeeded"
        wait_for("the consumer's run", lambda: asset_runs(kube, namespace) or None)
        assert kube.wait_run(namespace, "sales-report-asset-1")["status"]["phase"] == "Succeeded"
        wait_for(
            "the consumer to count its run",
            lambda: pipeline_status(kube, namespace, "sales-report").get("assetRuns") == 1,
        )
    finally:
        operator.stop()
        for key in ("SLUICE_CRASH_AT", "SLUICE_CRASH_MARKER"):
            operator.env.pop(key, None)
        operator.start()
    assert [r["metadata"]["name"] for r in asset_runs(kube, namespace)] == ["sales-report-asset-1"]
    assert (sequence(kube, namespace, SALES), sequence(kube, namespace, REGIONS)) == (1, 1)
    assert {
        m["name"]: m["consumedSequence"] for m in pipeline_status(kube, namespace, "sales-report")["assets"]
    } == {
        SALES: 1,
        REGIONS: 1,
    }


@pytest.mark.cluster_scope_only
def test_an_update_recorded_while_a_made_run_was_not_yet_counted_still_counts_for_the_next_run(
    kube: Kube, namespace: str, operator: OperatorProcess, tmp_path: pathlib.Path
) -> None:
    """The consumer made its run and was killed before counting it; another
    update of one asset landed meanwhile. The restarted pass counts what that
    run consumed, not the newest: the later update is not swallowed.
    """
    operator.stop()
    operator.env.update({"SLUICE_CRASH_AT": "asset-run-created", "SLUICE_CRASH_MARKER": str(tmp_path / "x")})
    try:
        operator.start()
        kube.apply(namespace, consumer(), producer([SALES, REGIONS]))
        kube.apply(namespace, run("daily-1", "load-warehouse", dataInterval=DAY))
        assert operator.process is not None
        wait_for("the operator to kill itself", lambda: operator.process.poll() is not None)
        found = asset(kube, namespace, SALES)
        assert found is not None
        late = {"sequence": 2, "time": found["status"]["lastUpdateTime"], "run": "late", "runUid": "late-uid"}
        status = {
            **found["status"],
            "sequence": 2,
            "events": [*found["status"]["events"], {**late, "task": "t"}],
        }
        kube.kubectl(
            "patch",
            "asset",
            asset_object_name(SALES),
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )
    finally:
        operator.stop()
        for key in ("SLUICE_CRASH_AT", "SLUICE_CRASH_MARKER"):
            operator.env.pop(key, None)
        operator.start()
    wait_for(
        "the consumer to count its run",
        lambda: pipeline_status(kube, namespace, "sales-report").get("assetRuns") == 1,
    )
    assert watermark(kube, namespace, "sales-report", SALES)["consumedSequence"] == 1
    assert watermark(kube, namespace, "sales-report", SALES)["latestSequence"] == 2
    assert [r["metadata"]["name"] for r in asset_runs(kube, namespace)] == ["sales-report-asset-1"]
    # REGIONS updated again completes the round that the late update began.
    kube.apply(namespace, pipeline("regions-only", [task("load", updatesAssets=[REGIONS])]))
    kube.apply(namespace, run("fix-regions", "regions-only"))
    wait_for("the second round's run", lambda: len(asset_runs(kube, namespace)) == 2)
    second = kube.wait_run(namespace, "sales-report-asset-2")
    assert {e["asset"]: e["run"] for e in second["status"]["triggeredBy"]} == {
        SALES: "late",
        REGIONS: "fix-regions",
    }


@pytest.mark.cluster_scope_only
def test_another_namespaces_asset_starts_runs_only_once_its_asset_shares_it(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    producers = f"{namespace}-prod"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=producers)))
    try:
        theirs = f"{producers}/{SALES}"
        grant = {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Asset",
            "metadata": {"name": asset_object_name(SALES)},
            "spec": {"name": SALES, "allowedNamespaces": ["someone-else"]},
        }
        kube.apply(producers, grant, producer([SALES]))
        kube.apply(namespace, consumer(on=[theirs]))
        kube.apply(producers, run("daily-1", "load-warehouse", dataInterval=DAY))
        assert kube.wait_run(producers, "daily-1")["status"]["phase"] == "Succeeded"

        def readable() -> dict[str, Any] | None:
            conditions = pipeline_status(kube, namespace, "sales-report").get("conditions") or ()
            return next(
                (c for c in conditions if c["type"] == "AssetsReadable" and c["status"] == "False"), None
            )

        refused = wait_for("the consumer to say the asset is not shared", readable)
        assert refused["reason"] == "AssetNotShared" and namespace in refused["message"]
        pipeline_events(kube, namespace, "sales-report", "AssetUnreadable")
        assert asset_runs(kube, namespace) == []

        grant["spec"]["allowedNamespaces"] = [namespace]
        kube.apply(producers, grant)
        wait_for("the consumer's run", lambda: asset_runs(kube, namespace) or None)
        done = kube.wait_run(namespace, "sales-report-asset-1")
        assert done["status"]["phase"] == "Succeeded"
        assert done["status"]["triggeredBy"][0]["namespace"] == producers
    finally:
        kube.core.delete_namespace(producers)


def test_a_bad_asset_reference_is_refused_at_apply(kube: Kube, namespace: str) -> None:
    bad = consumer(on=["not a/valid//name"])
    answer = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(bad), check=False)
    assert answer.returncode != 0 and "onAssets" in answer.stderr
    empty = pipeline("nothing", [task("a")], schedule={})
    answer = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(empty), check=False)
    assert answer.returncode != 0 and "a schedule needs cron, onAssets or both" in answer.stderr
