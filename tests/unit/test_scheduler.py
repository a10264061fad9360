from typing import Any

from sluice.api.v1alpha1 import ScheduleSpec
from sluice.scheduler import runs_to_prune, schedule_fingerprint


def run(name: str, at: str, phase: str, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "annotations": {"sluice.dev/scheduled-time": at},
        },
        "status": {"phase": phase},
    }


def test_history_keeps_the_newest_scheduled_runs_whatever_their_creation_order() -> None:
    schedule = ScheduleSpec(cron="@daily", successful_runs_history_limit=1, failed_runs_history_limit=1)
    runs = [
        run("p-3", "2026-01-03T00:00:00Z", "Succeeded", created="2026-01-05T00:00:00Z"),
        run("p-1", "2026-01-01T00:00:00Z", "Succeeded", created="2026-01-06T00:00:00Z"),
        run("p-2", "2026-01-02T00:00:00Z", "Succeeded", created="2026-01-06T00:00:01Z"),
        run("p-f1", "2026-01-01T12:00:00Z", "Failed"),
        run("p-f2", "2026-01-02T12:00:00Z", "Cancelled"),
        run("p-4", "2026-01-04T00:00:00Z", "Running"),
    ]
    assert runs_to_prune(runs, schedule) == ["p-1", "p-2", "p-f1"]


def test_fingerprint_changes_with_cron_or_timezone_only() -> None:
    base = ScheduleSpec(cron="@daily")
    assert schedule_fingerprint(base) == schedule_fingerprint(ScheduleSpec(cron="@daily", catch_up=3))
    assert schedule_fingerprint(base) != schedule_fingerprint(ScheduleSpec(cron="@hourly"))
    assert schedule_fingerprint(base) != schedule_fingerprint(
        ScheduleSpec(cron="@daily", timezone="Europe/Paris")
    )


def test_scheduled_run_is_named_after_its_time_and_can_pass_it_as_a_param() -> None:
    from datetime import UTC, datetime

    from sluice.schedule import Schedule
    from sluice.scheduler import scheduled_run

    schedule = ScheduleSpec.model_validate(
        {
            "cron": "0 1 * * *",
            "timezone": "Asia/Tokyo",
            "params": [{"name": "day", "value": "$(context.scheduledDate)"}],
        }
    )
    pipeline = {"metadata": {"name": "sales", "namespace": "etl", "uid": "u1"}}
    moment = datetime(2026, 1, 1, 16, 0, tzinfo=UTC)  # 01:00 on Jan 2 in Tokyo
    body = scheduled_run(pipeline, schedule, moment, Schedule.parse("0 1 * * *", "Asia/Tokyo"))
    assert body["metadata"]["name"] == "sales-202601011600"
    assert body["spec"]["params"] == [{"name": "day", "value": "2026-01-02"}]
    assert body["metadata"]["annotations"]["sluice.dev/scheduled-time"] == "2026-01-01T16:00:00Z"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u1"
