"""Scheduled runs. Time is driven by moving the Pipeline's lastScheduleTime
into the past (as if the operator had been down), never by waiting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.builders import pipeline, task
from tests.integration.conftest import Kube, OperatorProcess, pipeline_condition, wait_for

pytestmark = pytest.mark.integration
EVERY_TWO_HOURS = "0 */2 * * *"


def scheduled(name: str, tasks: list[dict[str, Any]], **schedule: Any) -> dict[str, Any]:
    return pipeline(name, tasks, schedule={"cron": EVERY_TWO_HOURS, **schedule})


def pipeline_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.custom.get_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelines", name)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def scheduled_runs(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.custom.list_namespaced_custom_object(
        "sluice.dev", "v1alpha1", namespace, "pipelineruns", label_selector=f"sluice.dev/scheduled-by={name}"
    )["items"]
    return sorted(items, key=lambda r: r["metadata"]["name"])


def rewind(kube: Kube, namespace: str, name: str, hours: int) -> None:
    """Pretend the schedule last fired ``hours`` ago (say, the operator was down)."""
    wait_for(
        "the schedule to be observed", lambda: pipeline_status(kube, namespace, name).get("observedSchedule")
    )
    past = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = json.dumps({"status": {"lastScheduleTime": past}})
    kube.kubectl(
        "patch", "pipeline", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch
    )


def newest_even_hours(count: int) -> list[str]:
    now = datetime.now(UTC)
    moment = now.replace(minute=0, second=0, microsecond=0)
    moment -= timedelta(hours=moment.hour % 2)
    return [(moment - timedelta(hours=2 * i)).strftime("%Y%m%d%H%M") for i in reversed(range(count))]


def test_missed_times_are_caught_up_once_with_deterministic_names(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    load = task(
        "load", args=["--at=$(context.scheduledTime)", "--day=$(context.scheduledDate)", "--t=$(params.t)"]
    )
    kube.apply(
        namespace,
        {
            **pipeline("nightly", [load], params=[{"name": "t"}]),
            "spec": {
                "tasks": [load],
                "params": [{"name": "t"}],
                "schedule": {
                    "cron": EVERY_TWO_HOURS,
                    "catchUp": 3,
                    "params": [{"name": "t", "value": "sales"}],
                },
            },
        },
    )
    rewind(kube, namespace, "nightly", hours=12)
    expected = [f"nightly-{stamp}" for stamp in newest_even_hours(3)]
    wait_for(
        "three caught-up runs",
        lambda: [r["metadata"]["name"] for r in scheduled_runs(kube, namespace, "nightly")] == expected,
    )
    for name in expected:
        assert kube.wait_run(namespace, name)["status"]["phase"] == "Succeeded"
    [pod] = kube.pods(namespace, expected[-1])
    stamp = expected[-1].rsplit("-", 1)[1]
    at = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:]}:00Z"
    assert pod.spec.containers[0].args == [f"--at={at}", f"--day={at[:10]}", "--t=sales"]
    status = pipeline_status(kube, namespace, "nightly")
    assert status["lastScheduleTime"] == at
    assert status["lastRunName"] == expected[-1]
    assert status["nextScheduleTime"] > at

    # A restart, and the same missed window seen again, start nothing twice.
    operator.kill()
    operator.start()
    rewind(kube, namespace, "nightly", hours=12)
    wait_for(
        "the rewound window to be handled",
        lambda: pipeline_status(kube, namespace, "nightly").get("lastScheduleTime") == at,
    )
    assert [r["metadata"]["name"] for r in scheduled_runs(kube, namespace, "nightly")] == expected


def test_without_catch_up_only_the_newest_missed_time_runs_and_history_is_pruned(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, scheduled("hourly", [task("a")], successfulRunsHistoryLimit=1))
    rewind(kube, namespace, "hourly", hours=12)
    [newest] = newest_even_hours(1)
    wait_for(
        "the newest missed run",
        lambda: (
            [r["metadata"]["name"] for r in scheduled_runs(kube, namespace, "hourly")] == [f"hourly-{newest}"]
        ),
    )
    kube.wait_run(namespace, f"hourly-{newest}")
    # Now catch up 3 at once with a history of 1: only the newest survives.
    kube.kubectl(
        "patch",
        "pipeline",
        "hourly",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"schedule": {"cron": EVERY_TWO_HOURS, "catchUp": 3}}}),
    )
    rewind(kube, namespace, "hourly", hours=12)
    wait_for(
        "history pruned to the newest succeeded run",
        lambda: (
            [
                (r["metadata"]["name"], (r.get("status") or {}).get("phase"))
                for r in scheduled_runs(kube, namespace, "hourly")
            ]
            == [(f"hourly-{newest}", "Succeeded")]
        ),
        timeout=60,
    )


def test_forbid_skips_a_time_while_a_run_is_active(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace, scheduled("forbid", [task("slow", duration="10m")], catchUp=3, concurrencyPolicy="Forbid")
    )
    rewind(kube, namespace, "forbid", hours=12)
    oldest = newest_even_hours(3)[0]
    wait_for(
        "the skip event",
        lambda: any(e.reason == "ScheduleSkipped" for e in kube.core.list_namespaced_event(namespace).items),
    )
    assert [r["metadata"]["name"] for r in scheduled_runs(kube, namespace, "forbid")] == [f"forbid-{oldest}"]


def test_replace_deletes_the_active_run_for_the_newer_time(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        scheduled("replace", [task("slow", duration="10m")], catchUp=3, concurrencyPolicy="Replace"),
    )
    rewind(kube, namespace, "replace", hours=12)
    newest = newest_even_hours(3)[-1]

    def only_the_newest_runs() -> bool:
        runs = scheduled_runs(kube, namespace, "replace")
        live = [r for r in runs if not r["metadata"].get("deletionTimestamp")]
        return [r["metadata"]["name"] for r in runs] == [f"replace-{newest}"] and bool(
            live and (live[0].get("status") or {}).get("phase") == "Running"
        )

    # Each due time replaced the run before it: only the newest is left, running.
    wait_for("only the newest scheduled run, running", only_the_newest_runs)
    wait_for(
        "only the newest run's pod",
        lambda: (
            [p.metadata.labels["sluice.dev/run"] for p in kube.core.list_namespaced_pod(namespace).items]
            == [f"replace-{newest}"]
        ),
    )


def test_suspended_schedule_starts_nothing(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    kube.apply(namespace, scheduled("paused", [task("a")], suspend=True))
    rewind(kube, namespace, "paused", hours=12)
    wait_for(
        "the rewind to be observed",
        lambda: pipeline_status(kube, namespace, "paused").get("lastScheduleTime"),
    )
    wait_for(
        "status without a next time",
        lambda: "nextScheduleTime" not in pipeline_status(kube, namespace, "paused"),
    )
    assert scheduled_runs(kube, namespace, "paused") == []


def test_invalid_cron_and_timezone_are_reported_on_the_pipeline(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(
        namespace,
        pipeline("badcron", [task("a")], schedule={"cron": "61 * * * *"}),
        pipeline("badzone", [task("a")], schedule={"cron": "@daily", "timezone": "Mars/Olympus"}),
    )
    for name, words in (("badcron", '"61 * * * *"'), ("badzone", "Mars/Olympus")):
        valid = wait_for(
            f"{name} Valid condition", lambda n=name: pipeline_condition(kube, namespace, n, "Valid")
        )
        assert (valid["status"], valid["reason"]) == ("False", "InvalidSchedule")
        assert words in valid["message"]
    bad = pipeline("nocron", [task("a")], schedule={"cron": "every day"})
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.schedule.cron" in result.stderr
