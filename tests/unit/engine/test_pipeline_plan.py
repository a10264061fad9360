"""A Pipeline's pass: validity, due scheduled times, concurrency policy, history."""

from datetime import UTC, datetime
from typing import Any

import pytest

from sluice.api.v1alpha1 import ScheduleSpec
from sluice.engine.announce import Announcement
from sluice.engine.cron import CronSchedule
from sluice.engine.pipeline_plan import (
    CreateRun,
    DeleteRun,
    PipelineFacts,
    ScheduledRun,
    plan_pipeline,
    runs_to_prune,
    schedule_fingerprint,
    schedule_of,
    scheduled_run,
    scheduled_run_view,
    status_patch,
)

CREATED = "2026-01-01T00:00:00Z"
EVERY_HOUR = "0 * * * *"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def past(name: str, at: str, phase: str | None) -> ScheduledRun:
    return ScheduledRun(name, at, phase)


def pipeline_obj(
    schedule: dict[str, Any] | None = None, generation: int = 1, **status: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"tasks": [{"name": "a", "image": "busybox:1.36"}]}
    if schedule is not None:
        spec["schedule"] = schedule
    return {
        "metadata": {
            "name": "sales",
            "namespace": "etl",
            "uid": "u1",
            "generation": generation,
            "creationTimestamp": CREATED,
            "resourceVersion": "1",
        },
        "spec": spec,
        "status": status,
    }


def creates(plan: Any) -> list[str]:
    return [a.name for a in plan.actions if isinstance(a, CreateRun)]


def deletes(plan: Any) -> list[str]:
    return [a.name for a in plan.actions if isinstance(a, DeleteRun)]


def announced(plan: Any) -> list[Announcement]:
    return [a for a in plan.actions if isinstance(a, Announcement)]


def test_history_keeps_the_newest_scheduled_runs_whatever_their_creation_order() -> None:
    schedule = ScheduleSpec(cron="@daily", successful_runs_history_limit=1, failed_runs_history_limit=1)

    def obj(name: str, at: str, phase: str, created: str = CREATED) -> dict[str, Any]:
        meta = {"name": name, "creationTimestamp": created, "annotations": {"sluice.dev/scheduled-time": at}}
        return {"metadata": meta, "status": {"phase": phase}}

    runs = [
        obj("p-3", "2026-01-03T00:00:00Z", "Succeeded", created="2026-01-05T00:00:00Z"),
        obj("p-1", "2026-01-01T00:00:00Z", "Succeeded", created="2026-01-06T00:00:00Z"),
        obj("p-2", "2026-01-02T00:00:00Z", "Succeeded", created="2026-01-06T00:00:01Z"),
        obj("p-f1", "2026-01-01T12:00:00Z", "Failed"),
        obj("p-f2", "2026-01-02T12:00:00Z", "Cancelled"),
        obj("p-4", "2026-01-04T00:00:00Z", "Running"),
    ]
    assert runs_to_prune([scheduled_run_view(r) for r in runs], schedule) == ["p-1", "p-2", "p-f1"]


def test_fingerprint_changes_with_cron_or_timezone_only() -> None:
    base = ScheduleSpec(cron="@daily")
    assert schedule_fingerprint(base) == schedule_fingerprint(ScheduleSpec(cron="@daily", catch_up=3))
    assert schedule_fingerprint(base) != schedule_fingerprint(ScheduleSpec(cron="@hourly"))
    assert schedule_fingerprint(base) != schedule_fingerprint(
        ScheduleSpec(cron="@daily", timezone="Europe/Paris")
    )


def test_scheduled_run_is_named_after_its_time_and_can_pass_it_as_a_param() -> None:
    schedule = ScheduleSpec.model_validate(
        {
            "cron": "0 1 * * *",
            "timezone": "Asia/Tokyo",
            "params": [{"name": "day", "value": "$(context.scheduledDate)"}],
        }
    )
    pipeline = {"metadata": {"name": "sales", "namespace": "etl", "uid": "u1"}}
    moment = utc(2026, 1, 1, 16, 0)  # 01:00 on Jan 2 in Tokyo
    body = scheduled_run(pipeline, schedule, moment, CronSchedule.parse("0 1 * * *", "Asia/Tokyo"))
    assert body["metadata"]["name"] == "sales-202601011600"
    assert body["spec"]["params"] == [{"name": "day", "value": "2026-01-02"}]
    assert body["metadata"]["annotations"]["sluice.dev/scheduled-time"] == "2026-01-01T16:00:00Z"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_a_pipeline_without_a_schedule_only_reports_its_validity() -> None:
    obj = pipeline_obj()
    assert schedule_of(obj) is None
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10)))
    assert plan.actions == () and plan.wake_after is None
    assert plan.status is not None
    assert plan.status.task_count == 1 and plan.status.observed_generation == 1
    valid = next(c for c in plan.status.conditions or () if c.type == "Valid")
    assert (valid.status, valid.reason) == ("True", "Valid")


def test_an_up_to_date_status_is_not_written_again() -> None:
    obj = pipeline_obj()
    first = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10)))
    assert first.status is not None
    obj["status"] = first.status.to_api()
    assert plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 11))).status is None


def test_an_invalid_cron_is_reported_and_schedules_nothing() -> None:
    obj = pipeline_obj({"cron": "61 * * * *"}, observedSchedule="0 * * * *|UTC", nextScheduleTime="x")
    assert schedule_of(obj) is None
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10)))
    assert plan.actions == () and plan.wake_after is None
    assert plan.status is not None
    valid = next(c for c in plan.status.conditions or () if c.type == "Valid")
    assert (valid.status, valid.reason) == ("False", "InvalidSchedule")
    assert plan.status.next_schedule_time is None
    # Marked, so that the fixed schedule starts afresh rather than firing missed times.
    assert plan.status.observed_schedule == "0 * * * *|UTC|invalid"


def test_the_newest_missed_time_starts_and_the_next_time_is_when_to_wake() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR}, observedSchedule=f"{EVERY_HOUR}|UTC", lastScheduleTime="2026-01-01T07:00:00Z"
    )
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 30), runs=()))
    assert creates(plan) == ["sales-202601011000"]
    assert plan.status is not None
    assert plan.status.last_schedule_time == "2026-01-01T10:00:00Z"
    assert plan.status.last_run_name == "sales-202601011000"
    assert plan.status.next_schedule_time == "2026-01-01T11:00:00Z"
    assert plan.wake_after == pytest.approx(30 * 60 + 0.05)
    created = next(a for a in plan.actions if isinstance(a, CreateRun))
    assert created.announcement.reason == "Scheduled"
    assert "sales-202601011000" in created.announcement.message


def test_catch_up_starts_each_missed_time_oldest_first_unless_its_run_exists() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR, "catchUp": 3},
        observedSchedule=f"{EVERY_HOUR}|UTC",
        lastScheduleTime="2026-01-01T06:00:00Z",
    )
    runs = (past("sales-202601010900", "2026-01-01T09:00:00Z", "Succeeded"),)
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 30), runs=runs))
    assert creates(plan) == ["sales-202601010800", "sales-202601011000"]


def test_forbid_skips_a_time_while_a_run_is_active_and_says_so() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR, "concurrencyPolicy": "Forbid"},
        observedSchedule=f"{EVERY_HOUR}|UTC",
        lastScheduleTime="2026-01-01T09:00:00Z",
    )
    runs = (past("sales-202601010900", "2026-01-01T09:00:00Z", "Running"),)
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 0, 5), runs=runs))
    assert [(e.type, e.reason) for e in announced(plan)] == [("Warning", "ScheduleSkipped")]
    assert creates(plan) == [] and deletes(plan) == []
    assert "sales-202601010900" in announced(plan)[0].message
    assert plan.status is not None and plan.status.last_schedule_time == "2026-01-01T10:00:00Z"


def test_forbid_with_catch_up_starts_only_the_first_missed_time() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR, "concurrencyPolicy": "Forbid", "catchUp": 2},
        observedSchedule=f"{EVERY_HOUR}|UTC",
        lastScheduleTime="2026-01-01T08:00:00Z",
    )
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 0, 5), runs=()))
    # In the order of the scheduled times: 09:00 starts, 10:00 is skipped for it.
    assert [type(a).__name__ for a in plan.actions] == ["CreateRun", "Announcement"]
    assert creates(plan) == ["sales-202601010900"]
    assert "sales-202601010900" in announced(plan)[0].message


def test_replace_deletes_the_active_run_before_starting_the_new_one() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR, "concurrencyPolicy": "Replace"},
        observedSchedule=f"{EVERY_HOUR}|UTC",
        lastScheduleTime="2026-01-01T09:00:00Z",
    )
    runs = (past("sales-202601010900", "2026-01-01T09:00:00Z", "Running"),)
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 0, 5), runs=runs))
    assert [type(a).__name__ for a in plan.actions] == ["DeleteRun", "CreateRun"]
    assert deletes(plan) == ["sales-202601010900"] and creates(plan) == ["sales-202601011000"]


def test_finished_runs_beyond_history_are_pruned_even_while_suspended() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR, "suspend": True, "successfulRunsHistoryLimit": 1},
        observedSchedule=f"{EVERY_HOUR}|UTC",
        lastScheduleTime="2026-01-01T07:00:00Z",
    )
    runs = (
        past("sales-202601010800", "2026-01-01T08:00:00Z", "Succeeded"),
        past("sales-202601010900", "2026-01-01T09:00:00Z", "Succeeded"),
    )
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 30), runs=runs))
    assert deletes(plan) == ["sales-202601010800"]
    assert creates(plan) == []
    assert plan.wake_after is None
    assert plan.status is not None and plan.status.next_schedule_time is None


def test_an_edited_schedule_starts_afresh_instead_of_firing_missed_times() -> None:
    obj = pipeline_obj(
        {"cron": "30 * * * *"},
        lastScheduleTime="2026-01-01T02:00:00Z",
        observedSchedule=f"{EVERY_HOUR}|UTC",
    )
    now = utc(2026, 1, 1, 10, 45)
    plan = plan_pipeline(PipelineFacts(obj, now, runs=()))
    assert plan.actions == ()
    assert plan.status is not None
    assert plan.status.observed_schedule == "30 * * * *|UTC"
    assert plan.status.last_schedule_time == "2026-01-01T02:00:00Z"  # still the last one that fired
    assert plan.status.schedule_active_since == "2026-01-01T10:45:00Z"
    assert plan.status.next_schedule_time == "2026-01-01T11:30:00Z"


def test_a_new_schedule_counts_from_the_pipelines_creation() -> None:
    obj = pipeline_obj({"cron": EVERY_HOUR})
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 0, 30), runs=()))
    assert creates(plan) == []
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 1, 0, 1), runs=()))
    assert creates(plan) == ["sales-202601010100"]


def test_replace_with_catch_up_keeps_only_the_newest_run_alive() -> None:
    obj = pipeline_obj(
        {"cron": EVERY_HOUR, "concurrencyPolicy": "Replace", "catchUp": 2},
        observedSchedule=f"{EVERY_HOUR}|UTC",
        lastScheduleTime="2026-01-01T08:00:00Z",
    )
    runs = (past("sales-202601010800", "2026-01-01T08:00:00Z", "Running"),)
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10, 0, 5), runs=runs))
    steps = [(type(a).__name__, getattr(a, "name", None)) for a in plan.actions]
    assert steps == [
        ("DeleteRun", "sales-202601010800"),
        ("CreateRun", "sales-202601010900"),
        ("DeleteRun", "sales-202601010900"),
        ("CreateRun", "sales-202601011000"),
    ]


def test_the_status_patch_is_conditional_and_clears_what_the_plan_dropped() -> None:
    obj = pipeline_obj(None, observedSchedule="0 * * * *|UTC", nextScheduleTime="2026-01-01T11:00:00Z")
    plan = plan_pipeline(PipelineFacts(obj, utc(2026, 1, 1, 10)))
    assert plan.status is not None
    body = status_patch(obj, plan.status)
    assert body["metadata"] == {"resourceVersion": "1"}
    assert body["status"]["nextScheduleTime"] is None
    assert body["status"]["observedSchedule"] is None
    assert body["status"]["taskCount"] == 1
