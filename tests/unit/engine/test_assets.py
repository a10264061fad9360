"""Assets: a producer's success recorded once, a consumer run per round of updates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.api import labels
from sluice.api.v1alpha1 import (
    ASSET_EVENTS_KEPT,
    AssetEvent,
    AssetSpec,
    AssetStatus,
    DataInterval,
    PipelineRunSpec,
    PipelineRunStatus,
    PipelineStatus,
    ScheduleSpec,
)
from sluice.engine.asset_schedule import ScheduledRun
from sluice.engine.assets import (
    AssetUpdate,
    AssetView,
    asset_object_name,
    recorded_status,
    triggered_variables,
    updates_due,
)
from sluice.engine.dag import build_graph
from sluice.engine.errors import InvalidPipeline
from sluice.engine.observe import TaskObservation
from sluice.engine.params import check_references
from sluice.engine.pipeline_plan import CreateRun, DeleteRun, PipelineFacts, plan_pipeline, runs_to_prune
from sluice.engine.render import RunIdentity
from sluice.engine.run_plan import RunFacts, plan_run, run_variables
from sluice.engine.run_source import Fetched
from tests.builders import T0, run_facts, snapshot, spec_of

ASSET = "warehouse.daily_sales"
OTHER = "warehouse.regions"
CREATED = "2026-11-24T09:00:00Z"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


# --- naming -------------------------------------------------------------------------------


def test_an_asset_name_that_is_a_valid_object_name_is_used_as_is() -> None:
    assert asset_object_name("warehouse.sales") == "warehouse.sales"


def test_other_names_get_a_valid_object_name_that_tells_them_apart() -> None:
    lower, upper = asset_object_name("warehouse.daily_sales"), asset_object_name("Warehouse.Daily_Sales")
    assert lower.startswith("warehouse.daily-sales-") and upper.startswith("warehouse.daily-sales-")
    assert lower != upper
    assert len(asset_object_name("x_" * 200)) <= 253


# --- producers --------------------------------------------------------------------------


PRODUCER = spec_of(
    [
        {"name": "load", "updatesAssets": [ASSET, OTHER]},
        {"name": "report", "dependsOn": ["load"]},
    ]
)
INTERVAL = DataInterval(start="2026-11-23T00:00:00Z", end="2026-11-24T00:00:00Z")


def producer_facts(status: PipelineRunStatus, **tasks: TaskObservation) -> RunFacts:
    facts: RunFacts = run_facts(status, T0, pipeline="daily", name="daily-1", **tasks)
    return facts


def test_a_task_that_succeeds_records_one_update_per_asset_before_its_status_says_so() -> None:
    status = snapshot(PRODUCER, pipeline_name="daily", phase="Running", data_interval=INTERVAL)
    plan = plan_run(producer_facts(status, load=TaskObservation("pod-load", "Succeeded", completion_time=T0)))
    assert sorted(u.asset for u in plan.asset_updates) == [ASSET, OTHER]
    event = plan.asset_updates[0].event
    assert (event.run, event.run_uid, event.task, event.pipeline) == ("daily-1", "uid-1", "load", "daily")
    assert event.data_interval == INTERVAL
    assert plan.status is not None
    assert {(r.task, r.asset) for r in plan.status.assets_updated or ()} == {("load", ASSET), ("load", OTHER)}
    # The next pass, on that status, records nothing again.
    again = plan_run(
        producer_facts(plan.status, load=TaskObservation("pod-load", "Succeeded", completion_time=T0))
    )
    assert again.asset_updates == ()


def test_a_failed_or_reused_task_records_no_update() -> None:
    running = snapshot(PRODUCER, pipeline_name="daily", phase="Running")
    failed = plan_run(producer_facts(running, load=TaskObservation("pod-load", "Failed", exit_code=1)))
    assert failed.asset_updates == ()
    reused = snapshot(PRODUCER, pipeline_name="daily", phase="Running")
    tasks = [
        t.model_copy(update={"phase": "Succeeded", "reason": "Reused"}) if t.name == "load" else t
        for t in reused.tasks or ()
    ]
    assert updates_due(reused.model_copy(update={"tasks": tasks}), "etl", "r", "u", T0) == ()


def update(run_uid: str, task: str = "load", time: str = T0) -> AssetUpdate:
    event = AssetEvent(sequence=1, time=time, run="r", run_uid=run_uid, task=task)
    return AssetUpdate(ASSET, event)


def test_an_asset_numbers_its_updates_and_records_each_only_once() -> None:
    first = recorded_status(AssetStatus(), update("u1"))
    assert first is not None and first.sequence == 1
    second = recorded_status(first, update("u2"))
    assert second is not None and second.sequence == 2 and second.last_updated_by == "r/load"
    assert recorded_status(second, update("u1")) is None
    assert recorded_status(second, update("u2")) is None


def test_an_asset_keeps_only_its_newest_updates_but_keeps_counting() -> None:
    status = AssetStatus()
    for n in range(ASSET_EVENTS_KEPT + 5):
        recorded = recorded_status(status, update(f"u{n}"))
        assert recorded is not None
        status = recorded
    assert status.sequence == ASSET_EVENTS_KEPT + 5
    assert [e.sequence for e in status.events or ()] == list(range(6, ASSET_EVENTS_KEPT + 6))


# --- consumers --------------------------------------------------------------------------


def consumer(generation: int = 1, schedule: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "report",
            "namespace": "etl",
            "uid": "p1",
            "generation": generation,
            "creationTimestamp": CREATED,
            "resourceVersion": "7",
        },
        "spec": {
            "tasks": [{"name": "a", "image": "busybox:1.36"}],
            "schedule": schedule or {"onAssets": [ASSET, OTHER]},
        },
        "status": status,
    }


def event(sequence: int, at: str, run: str = "daily-1", day: str = "2026-11-23") -> AssetEvent:
    return AssetEvent(
        sequence=sequence,
        time=at,
        namespace="etl",
        run=run,
        run_uid=f"uid-{run}",
        pipeline="daily",
        task="load",
        scheduled_time=f"{day}T00:00:00Z",
        scheduled_date=day,
        data_interval=DataInterval(start=f"{day}T00:00:00Z", end=f"{day}T23:59:59Z"),
    )


def view(*events: AssetEvent, name: str = ASSET, shared: list[str] | None = None) -> AssetView:
    sequence = max((e.sequence for e in events), default=0)
    status = AssetStatus(sequence=sequence, events=list(events)) if events else None
    return AssetView(AssetSpec(name=name, allowed_namespaces=shared), status)


def plan(
    obj: dict[str, Any],
    assets: dict[str, AssetView],
    runs: tuple[ScheduledRun, ...] = (),
    now: datetime = NOW,
) -> Any:
    return plan_pipeline(PipelineFacts(obj, now, runs, assets=assets))


def created(result: Any) -> list[CreateRun]:
    return [a for a in result.actions if isinstance(a, CreateRun)]


def status_of(result: Any) -> PipelineStatus:
    assert result.status is not None
    return PipelineStatus.model_validate(result.status.to_api())


def obj_with(previous: Any, generation: int = 1) -> dict[str, Any]:
    """The consumer as the status the plan wrote leaves it."""
    return consumer(generation, **status_of(previous).to_api())


def test_a_consumer_waits_for_every_asset_then_starts_one_run_that_loads_the_producers_day() -> None:
    early = "2026-11-24T09:30:00Z"
    only_one = plan(consumer(), {ASSET: view(event(1, early)), OTHER: view(name=OTHER)})
    assert created(only_one) == []
    marks = {m.name: (m.consumed_sequence, m.latest_sequence) for m in status_of(only_one).assets or ()}
    assert marks == {ASSET: (0, 1), OTHER: (0, 0)}
    readable = next(c for c in status_of(only_one).conditions or () if c.type == "AssetsReadable")
    assert readable.status == "True" and OTHER in readable.message

    both = {ASSET: view(event(1, early)), OTHER: view(event(1, early), name=OTHER)}
    started = plan(obj_with(only_one), both)
    [run] = created(started)
    assert run.name == "report-asset-1"
    meta = run.body["metadata"]
    assert meta["labels"][labels.SCHEDULED_BY] == "report"
    assert meta["annotations"][labels.SCHEDULED_DATE] == "2026-11-23"
    assert json.loads(meta["annotations"][labels.ASSET_SEQUENCES]) == {ASSET: 1, OTHER: 1}
    assert [e["asset"] for e in json.loads(meta["annotations"][labels.TRIGGERED_BY])] == [ASSET, OTHER]
    assert run.body["spec"]["dataInterval"] == {
        "start": "2026-11-23T00:00:00Z",
        "end": "2026-11-23T23:59:59Z",
    }
    assert run.announcement.reason == "AssetsUpdated" and "daily-1/load" in run.announcement.message
    after = status_of(started)
    assert after.asset_runs == 1 and after.last_run_name == "report-asset-1"

    # The same updates never start a second run.
    again = plan(
        obj_with(started), both, (ScheduledRun("report-asset-1", T0, "Running", T0, 1, {ASSET: 1, OTHER: 1}),)
    )
    assert created(again) == []


def test_a_run_made_by_a_pass_that_lost_its_status_write_is_adopted_not_made_again() -> None:
    early = "2026-11-24T09:30:00Z"
    both = {ASSET: view(event(1, early)), OTHER: view(event(1, early), name=OTHER)}
    first = plan(consumer(), both)
    assert [r.name for r in created(first)] == ["report-asset-1"]
    # The status write was lost; meanwhile ASSET had a second update.
    newer = {ASSET: view(event(1, early), event(2, "2026-11-24T09:50:00Z")), OTHER: both[OTHER]}
    made = ScheduledRun("report-asset-1", T0, "Running", T0, 1, {ASSET: 1, OTHER: 1})
    retried = plan(consumer(), newer, (made,))
    assert created(retried) == []
    marks = {m.name: m.consumed_sequence for m in status_of(retried).assets or ()}
    assert marks == {ASSET: 1, OTHER: 1}  # what that run consumed, not the newest
    assert status_of(retried).asset_runs == 1
    # ASSET's second update still counts: once OTHER is updated again, run 2 starts.
    more = {ASSET: newer[ASSET], OTHER: view(event(1, early), event(2, "2026-11-24T09:55:00Z"), name=OTHER)}
    [run] = created(plan(obj_with(retried), more, (made,)))
    assert run.name == "report-asset-2"


def test_updates_before_a_pipeline_existed_do_not_count_but_those_since_its_creation_do() -> None:
    before, since = "2026-11-24T08:00:00Z", "2026-11-24T09:10:00Z"
    assets = {ASSET: view(event(1, before)), OTHER: view(event(1, before), event(2, since), name=OTHER)}
    result = plan(consumer(), assets)
    marks = {m.name: m.consumed_sequence for m in status_of(result).assets or ()}
    assert marks == {ASSET: 1, OTHER: 1}
    assert created(result) == []


def test_an_asset_added_to_an_edited_schedule_counts_only_updates_from_now_on() -> None:
    since = "2026-11-24T09:10:00Z"
    assets = {ASSET: view(event(1, since)), OTHER: view(event(1, since), name=OTHER)}
    edited = consumer(generation=2, assets=[{"name": ASSET, "consumedSequence": 0}], assetRuns=0)
    result = plan(edited, assets)
    marks = {m.name: m.consumed_sequence for m in status_of(result).assets or ()}
    assert marks == {ASSET: 0, OTHER: 1}
    assert created(result) == []


def ready() -> dict[str, AssetView]:
    at = "2026-11-24T09:30:00Z"
    return {ASSET: view(event(1, at)), OTHER: view(event(1, at), name=OTHER)}


def test_forbid_waits_for_the_active_run_and_replace_deletes_it() -> None:
    active = (ScheduledRun("report-202611240900", T0, "Running", T0),)
    forbid = consumer(schedule={"onAssets": [ASSET, OTHER], "concurrencyPolicy": "Forbid"})
    assert created(plan(forbid, ready(), active)) == []
    replace = consumer(schedule={"onAssets": [ASSET, OTHER], "concurrencyPolicy": "Replace"})
    result = plan(replace, ready(), active)
    assert [type(a).__name__ for a in result.actions if not hasattr(a, "reason")] == [
        "DeleteRun",
        "CreateRun",
    ]
    assert [a.name for a in result.actions if isinstance(a, DeleteRun)] == ["report-202611240900"]


def test_the_rate_limit_counts_started_runs_even_once_deleted_and_gathers_what_waits() -> None:
    marks = [{"name": ASSET, "consumedSequence": 0}, {"name": OTHER, "consumedSequence": 0}]
    limited = consumer(assets=marks, assetRuns=1, assetRunTimes=["2026-11-24T09:59:30Z"])
    limited["spec"]["maxTriggeredRunsPerMinute"] = 1
    # Run 1 was pruned already (history limit 0): its start still counts.
    result = plan(limited, ready(), ())
    assert created(result) == []
    assert result.wake_after == pytest.approx(30, abs=0.1)
    # Meanwhile ASSET had two more updates: the run after the window gathers all three.
    at = "2026-11-24T09:40:00Z"
    waited = {
        ASSET: view(
            event(1, at, "daily-21", "2026-11-21"),
            event(2, at, "daily-22", "2026-11-22"),
            event(3, at, "daily-23", "2026-11-23"),
        ),
        OTHER: view(event(1, at), name=OTHER),
    }
    later = plan(limited, waited, (), NOW + timedelta(seconds=31))
    [run] = created(later)
    assert run.name == "report-asset-2"
    triggered = json.loads(run.body["metadata"]["annotations"][labels.TRIGGERED_BY])
    assert [(e["asset"], e["run"]) for e in triggered] == [
        (ASSET, "daily-21"),
        (ASSET, "daily-22"),
        (ASSET, "daily-23"),
        (OTHER, "daily-1"),
    ]
    assert run.body["spec"]["dataInterval"] == {
        "start": "2026-11-21T00:00:00Z",
        "end": "2026-11-23T23:59:59Z",
    }
    assert run.body["metadata"]["annotations"][labels.SCHEDULED_DATE] == "2026-11-23"
    assert status_of(later).asset_run_times == [(NOW + timedelta(seconds=31)).strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_an_asset_made_again_counts_afresh_instead_of_waiting_for_its_old_count() -> None:
    marks = [{"name": ASSET, "uid": "old", "consumedSequence": 57}, {"name": OTHER, "consumedSequence": 0}]
    obj = consumer(assets=marks, assetRuns=3)
    at = "2026-11-24T09:30:00Z"
    remade = AssetView(AssetSpec(name=ASSET), AssetStatus(sequence=1, events=[event(1, at)]), uid="new")
    result = plan(obj, {ASSET: remade, OTHER: view(event(1, at), name=OTHER)})
    assert [r.name for r in created(result)] == ["report-asset-4"]
    assert {m.name: m.uid for m in status_of(result).assets or ()}[ASSET] == "new"


def test_nothing_is_counted_for_an_asset_until_it_can_be_read_then_only_what_follows() -> None:
    theirs = "sales/" + ASSET
    obj = consumer(generation=2, schedule={"onAssets": [theirs]}, assets=[], assetRuns=0)
    at = "2026-11-24T09:30:00Z"
    history = [event(n, at) for n in range(1, 6)]
    hidden = AssetView(
        AssetSpec(name=ASSET, allowed_namespaces=["other"]), AssetStatus(sequence=5, events=history)
    )
    first = plan(obj, {theirs: hidden})
    [mark] = status_of(first).assets or ()
    assert mark.consumed_sequence is None and mark.message is not None
    shared = AssetView(
        AssetSpec(name=ASSET, allowed_namespaces=["etl"]), AssetStatus(sequence=5, events=history)
    )
    second = plan(obj_with(first, 2) | {"spec": obj["spec"]}, {theirs: shared})
    assert created(second) == []
    assert [m.consumed_sequence for m in status_of(second).assets or ()] == [5]


def test_an_update_recorded_long_ago_is_still_found_when_recorded_again() -> None:
    status = recorded_status(AssetStatus(), update("first"))
    assert status is not None
    for n in range(ASSET_EVENTS_KEPT * 3):
        recorded = recorded_status(status, update(f"other-{n}"))
        assert recorded is not None
        status = recorded
    assert recorded_status(status, update("first")) is None


def test_updates_completed_since_creation_count_whatever_order_they_were_recorded_in() -> None:
    """P2 finished after the consumer was created but was recorded first."""
    created_at = CREATED  # 09:00
    late = event(1, "2026-11-24T09:05:00Z", "p2")
    early = event(2, "2026-11-24T08:55:00Z", "p1")
    result = plan(consumer(schedule={"onAssets": [ASSET]}), {ASSET: view(late, early)})
    assert created_at < late.time
    [run] = created(result)
    assert [e["run"] for e in json.loads(run.body["metadata"]["annotations"][labels.TRIGGERED_BY])] == [
        "p2",
        "p1",
    ]


def test_a_schedule_that_would_trigger_itself_or_could_not_tell_assets_apart_is_invalid() -> None:
    looped = spec_of([{"name": "load", "updatesAssets": [ASSET]}], schedule={"onAssets": [ASSET]})
    with pytest.raises(InvalidPipeline, match="each run would start the next"):
        check_references(looped, build_graph(looped))
    twice = spec_of([{"name": "a"}], schedule={"onAssets": [ASSET, f"eu/{ASSET}"]})
    with pytest.raises(InvalidPipeline, match="could not tell them apart"):
        check_references(twice, build_graph(twice))


def test_the_assets_condition_goes_when_the_schedule_no_longer_waits_on_assets() -> None:
    waiting = plan(consumer(), {})
    assert any(c.type == "AssetsReadable" for c in status_of(waiting).conditions or ())
    cron_only = obj_with(waiting) | {"spec": consumer(schedule={"cron": "@daily"})["spec"]}
    after = plan(cron_only, {})
    assert not any(c.type == "AssetsReadable" for c in status_of(after).conditions or ())
    assert status_of(after).assets is None


def test_an_asset_of_another_namespace_is_read_only_where_it_is_shared() -> None:
    theirs = "sales/" + ASSET
    obj = consumer(schedule={"onAssets": [theirs]})
    at = "2026-11-24T09:30:00Z"
    refused = plan(obj, {theirs: view(event(1, at), shared=["marketing"])})
    assert created(refused) == []
    condition = next(c for c in status_of(refused).conditions or () if c.type == "AssetsReadable")
    assert (condition.status, condition.reason) == ("False", "AssetNotShared")
    assert "spec.allowedNamespaces" in condition.message
    assert [a.reason for a in refused.actions if hasattr(a, "reason")] == ["AssetUnreadable"]
    # Shown once: the next pass, on that status, posts no second Event.
    again = plan(
        obj_with(refused) | {"spec": obj["spec"]}, {theirs: view(event(1, at), shared=["marketing"])}
    )
    assert [a for a in again.actions if hasattr(a, "reason")] == []
    shared = plan(obj, {theirs: view(event(1, at), shared=["etl"])})
    assert len(created(shared)) == 1


def test_an_asset_run_not_yet_counted_is_never_pruned() -> None:
    schedule = ScheduleSpec(on_assets=[ASSET], successful_runs_history_limit=0)
    runs = [
        ScheduledRun("report-asset-1", T0, "Succeeded", T0, 1, {}),
        ScheduledRun("report-asset-2", T0, "Succeeded", T0, 2, {}),
    ]
    assert runs_to_prune(runs, schedule, asset_runs_recorded=1) == ["report-asset-1"]


# --- what the run reads -----------------------------------------------------------------


def test_a_pipeline_may_read_the_updates_of_the_assets_it_waits_on_and_nothing_else() -> None:
    spec = spec_of(
        [
            {
                "name": "a",
                "args": [
                    "$(context.triggeredBy.warehouse.daily_sales.scheduledDate)",
                    "$(context.triggeredBy)",
                ],
            }
        ],
        schedule={"onAssets": [ASSET]},
    )
    check_references(spec, build_graph(spec))
    typo = spec_of(
        [{"name": "a", "args": ["$(context.triggeredBy.warehouse.daily.run)"]}],
        schedule={"onAssets": [ASSET]},
    )
    with pytest.raises(InvalidPipeline, match=r"asset of schedule\.onAssets"):
        check_references(typo, build_graph(typo))


def test_a_run_reads_the_update_that_started_it_and_empty_values_otherwise() -> None:
    spec = spec_of([{"name": "a"}], schedule={"onAssets": [ASSET, OTHER]})
    started_by = event(3, T0).model_copy(update={"asset": ASSET})
    status = snapshot(spec, pipeline_name="report", triggered_by=[started_by])
    values = run_variables(RunIdentity("etl", "r", "u", "report"), status, {}, T0)
    assert values[f"context.triggeredBy.{ASSET}.run"] == "daily-1"
    assert values[f"context.triggeredBy.{ASSET}.sequence"] == "3"
    assert values[f"context.triggeredBy.{ASSET}.dataIntervalStart"] == "2026-11-23T00:00:00Z"
    assert values[f"context.triggeredBy.{OTHER}.run"] == ""
    assert json.loads(values["context.triggeredBy"])[0]["run"] == "daily-1"
    assert triggered_variables(spec, [])["context.triggeredBy"] == "[]"


def test_an_asset_run_freezes_what_started_it_from_its_annotation() -> None:
    spec = spec_of([{"name": "a"}], schedule={"onAssets": [ASSET]})
    annotation = json.dumps([event(1, T0).model_copy(update={"asset": ASSET}).to_api()])

    facts = RunFacts(
        namespace="etl",
        name="report-asset-1",
        uid="u",
        created=T0,
        now=T0,
        status=PipelineRunStatus(),
        spec=PipelineRunSpec.model_validate({"pipelineRef": {"name": "report"}}),
        pipeline_grace_seconds=10,
        annotations={labels.TRIGGERED_BY: annotation},
        source=Fetched("report", {"metadata": {"name": "report"}, "spec": spec.to_api()}),
    )
    result = plan_run(facts)
    assert result.status is not None
    assert [e.run for e in result.status.triggered_by or ()] == ["daily-1"]
