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
