"""Scheduled runs. Time is driven by moving the Pipeline's lastScheduleTime
into the past (as if the operator had been down), never by waiting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.builders import pipeline, run, task
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


def ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def patch_status(kube: Kube, namespace: str, name: str, status: dict[str, Any]) -> None:
    patch = json.dumps({"status": status})
    kube.kubectl(
        "patch", "pipeline", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch
    )


def rewind(kube: Kube, namespace: str, name: str, hours: int) -> None:
    """Pretend the schedule has been in effect, and last fired, ``hours`` ago
    (and the operator was down since).
    """
    wait_for(
        "the schedule to be observed",
        lambda: pipeline_status(kube, namespace, name).get("scheduleActiveSince"),
    )
    clear_of_an_even_hour()
    patch_status(kube, namespace, name, {"lastScheduleTime": ago(hours), "scheduleActiveSince": ago(hours)})


def run_names(kube: Kube, namespace: str, name: str) -> list[str]:
    return [r["metadata"]["name"] for r in scheduled_runs(kube, namespace, name)]


def clear_of_an_even_hour(margin: float = 90) -> None:
    """Wait, if need be, until the next even hour is at least ``margin``
    seconds away: a test whose expected run names come from the newest even
    hour must not see it change half-way.
    """

    def seconds_to_next() -> float:
        now = datetime.now(UTC)
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=now.hour % 2)
        return (start + timedelta(hours=2) - now).total_seconds()

    wait_for("the even hour to pass", lambda: seconds_to_next() > margin, timeout=margin + 30, interval=1)


def newest_even_hours(count: int) -> list[str]:
    clear_of_an_even_hour()
    now = datetime.now(UTC)
    moment = now.replace(minute=0, second=0, microsecond=0)
    moment -= timedelta(hours=moment.hour % 2)
    return [(moment - timedelta(hours=2 * i)).strftime("%Y%m%d%H%M") for i in reversed(range(count))]


def test_missed_times_are_caught_up_once_with_deterministic_names(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    load = task(
        "load",
        args=[
            "--at=$(context.scheduledTime)",
            "--day=$(context.scheduledDate)",
            "--t=$(params.t)",
            "--from=$(context.dataIntervalStart)",
            "--to=$(context.dataIntervalEnd)",
        ],
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
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    assert pod.spec.containers[0].args == [
        f"--at={at}",
        f"--day={at[:10]}",
        "--t=sales",
        f"--from={(moment - timedelta(hours=2)).isoformat()}",  # the previous instant, to this one
        f"--to={moment.isoformat()}",
    ]
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


def test_a_suspended_schedule_starts_nothing_then_resumes_without_firing_the_past(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, scheduled("paused", [task("a")], suspend=True, catchUp=3))
    wait_for(
        "the suspension to be observed",
        lambda: pipeline_status(kube, namespace, "paused").get("observedSchedule", "").endswith("|suspended"),
    )
    # Twelve hours pass while it is suspended (and the operator is down).
    patch_status(kube, namespace, "paused", {"lastScheduleTime": ago(12), "scheduleActiveSince": ago(12)})
    wait_for(
        "the operator's pass over the rewound, suspended schedule",
        lambda: "scheduleActiveSince" not in pipeline_status(kube, namespace, "paused"),
    )
    assert run_names(kube, namespace, "paused") == []
    assert "nextScheduleTime" not in pipeline_status(kube, namespace, "paused")
    # Resumed: the six even hours it slept through stay unloaded.
    resumed = ago(0)
    kube.kubectl(
        "patch",
        "pipeline",
        "paused",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"schedule":{"suspend":false}}}',
    )
    status = wait_for(
        "the resume to be observed",
        lambda: (s := pipeline_status(kube, namespace, "paused")).get("nextScheduleTime") and s,
    )
    # The pass that wrote nextScheduleTime created its runs before: none.
    assert run_names(kube, namespace, "paused") == []
    assert status["observedSchedule"] == f"{EVERY_TWO_HOURS}|UTC"
    assert status["scheduleActiveSince"] >= resumed


def test_a_schedule_added_to_an_old_pipeline_fires_no_past_time(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, pipeline("old", [task("a")]))
    wait_for("the pipeline to be seen", lambda: pipeline_condition(kube, namespace, "old", "Valid"))
    # What a schedule removed long ago leaves behind.
    patch_status(kube, namespace, "old", {"lastScheduleTime": ago(24)})
    added = ago(0)
    schedule = {"cron": EVERY_TWO_HOURS, "catchUp": 5}
    kube.kubectl(
        "patch",
        "pipeline",
        "old",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"schedule": schedule}}),
    )
    status = wait_for(
        "the new schedule to be observed",
        lambda: (s := pipeline_status(kube, namespace, "old")).get("nextScheduleTime") and s,
    )
    assert run_names(kube, namespace, "old") == []
    assert status["scheduleActiveSince"] >= added


def test_pipelines_sharing_a_fifty_character_prefix_each_get_their_run(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    prefix = "warehouse-nightly-load-of-the-finance-department-x"  # 50 characters
    names = [prefix + "-eu", prefix + "-us"]
    kube.apply(namespace, *(scheduled(name, [task("a")]) for name in names))
    for name in names:
        rewind(kube, namespace, name, hours=12)
    [stamp] = newest_even_hours(1)
    runs = {name: wait_for(f"{name}'s run", lambda n=name: run_names(kube, namespace, n)) for name in names}
    assert runs[names[0]] != runs[names[1]]
    for name, [run_name] in runs.items():
        assert len(run_name) <= 63 and run_name.endswith(f"-{stamp}")
        assert kube.wait_run(namespace, run_name)["status"]["phase"] == "Succeeded"
        assert pipeline_status(kube, namespace, name)["lastRunName"] == run_name


def test_a_run_name_taken_by_someone_else_blocks_that_time_visibly_until_freed(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    [stamp] = newest_even_hours(1)
    squatter = f"taken-{stamp}"
    # Even with the schedule's own label, a run the Pipeline does not own is a stranger.
    stranger = run(squatter, "nowhere")
    stranger["metadata"]["labels"] = {"sluice.dev/scheduled-by": "taken"}
    kube.apply(namespace, stranger, scheduled("taken", [task("a")]))
    rewind(kube, namespace, "taken", hours=12)
    blocked = wait_for(
        "the Blocked condition", lambda: pipeline_condition(kube, namespace, "taken", "Blocked")
    )
    assert (blocked["status"], blocked["reason"]) == ("True", "NameTaken")
    assert squatter in blocked["message"] and "not started by this schedule" in blocked["message"]
    wait_for(
        "the NameTaken Event",
        lambda: any(
            e.reason == "NameTaken" and e.involved_object.name == "taken"
            for e in kube.core.list_namespaced_event(namespace).items
        ),
    )
    before = pipeline_status(kube, namespace, "taken").get("lastScheduleTime")
    assert before is not None and before < f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:00:00Z"
    # Freed: the time is started by the schedule, as its own run.
    kube.kubectl("delete", "pipelinerun", squatter, "-n", namespace, "--wait=true")
    done = kube.wait_run(namespace, squatter)
    assert done["metadata"]["ownerReferences"][0]["kind"] == "Pipeline"
    assert done["status"]["phase"] == "Succeeded"
    wait_for(
        "the Blocked condition to clear",
        lambda: (pipeline_condition(kube, namespace, "taken", "Blocked") or {}).get("status") == "False",
    )


def test_history_limits_spare_a_run_an_unfinished_rerun_re_runs(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        scheduled("kept", [task("slow", duration="10m")], catchUp=2, failedRunsHistoryLimit=2),
    )
    rewind(kube, namespace, "kept", hours=12)
    older, newer = (f"kept-{stamp}" for stamp in newest_even_hours(2))
    wait_for("both runs", lambda: run_names(kube, namespace, "kept") == [older, newer])
    for name in (older, newer):
        kube.kubectl(
            "patch", "pipelinerun", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"cancelled":true}}'
        )
        assert kube.wait_run(namespace, name, ("Cancelled",))["status"]["phase"] == "Cancelled"
    kube.apply(namespace, {**run("again", "kept"), "spec": {"rerunOf": {"name": older}}})
    wait_for(
        "the rerun to be running",
        lambda: (kube.run(namespace, "again").get("status") or {}).get("phase") == "Running",
    )
    # Now one failed run is kept: the older one is beyond it, but the rerun uses it.
    kube.kubectl(
        "patch",
        "pipeline",
        "kept",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"schedule":{"failedRunsHistoryLimit":1}}}',
    )
    wait_for(
        "a pass under the new limit",
        lambda: pipeline_status(kube, namespace, "kept").get("observedGeneration") == 2,
    )
    assert run_names(kube, namespace, "kept") == [older, newer]
    # The rerun ends: its source goes, oldest first, down to the limit.
    kube.kubectl(
        "patch", "pipelinerun", "again", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancelled":true}}'
    )
    wait_for("the source pruned", lambda: run_names(kube, namespace, "kept") == [newer])


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


def test_a_run_made_by_hand_may_set_its_data_interval_and_a_backwards_one_is_refused(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    echo = task("echo", args=["$(context.dataIntervalStart)", "$(context.dataIntervalEnd)"])
    interval = {"start": "2026-01-01T00:00:00+01:00", "end": "2026-02-01T00:00:00+01:00"}
    kube.apply(namespace, pipeline("monthly", [echo]), run("january", "monthly", dataInterval=interval))
    assert kube.wait_run(namespace, "january")["status"]["phase"] == "Succeeded"
    [pod] = kube.pods(namespace, "january")
    assert pod.spec.containers[0].args == [interval["start"], interval["end"]]
    backwards = run("backwards", "monthly", dataInterval={"start": interval["end"], "end": interval["start"]})
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(backwards), check=False)
    assert result.returncode != 0
    assert "dataInterval.start must not be after dataInterval.end" in result.stderr
