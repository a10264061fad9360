"""Backfills on the real API server: a month of a daily schedule loaded in
order, never more than maxConcurrent at once, each date once; cancelling."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import watch

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration
FINISHED = {"Succeeded", "Failed", "Cancelled"}


def backfill(name: str, pipeline_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": pipeline_name}, **spec},
    }


def backfill_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.custom.get_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "backfills", name)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def listing(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    """The Backfill's runs as the API lists them (items and resourceVersion)."""
    found: dict[str, Any] = kube.custom.list_namespaced_custom_object(
        "sluice.dev", "v1alpha1", namespace, "pipelineruns", label_selector=f"sluice.dev/backfill={name}"
    )
    return found


def runs_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return sorted(listing(kube, namespace, name)["items"], key=lambda r: r["metadata"]["name"])


def run_changes(kube: Kube, namespace: str, name: str, since: str, seconds: int) -> Iterator[dict[str, Any]]:
    """Every change to the Backfill's runs after resourceVersion ``since``, in the API server's order."""
    changes: Iterator[dict[str, Any]] = watch.Watch().stream(
        kube.custom.list_namespaced_custom_object,
        "sluice.dev",
        "v1alpha1",
        namespace,
        "pipelineruns",
        label_selector=f"sluice.dev/backfill={name}",
        resource_version=since,
        timeout_seconds=seconds,
    )
    return changes


def daily(name: str, *tasks: dict[str, Any]) -> dict[str, Any]:
    # Suspended: only the backfill starts runs here.
    schedule = {
        "cron": "0 0 * * *",
        "suspend": True,
        "params": [{"name": "day", "value": "$(context.scheduledDate)"}],
    }
    return pipeline(name, list(tasks), params=[{"name": "day"}], schedule=schedule)


def test_a_31_day_backfill_loads_each_date_once_in_order_never_more_than_3_at_once(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    load = task(
        "load",
        duration="1s",
        args=["--day=$(params.day)", "$(context.dataIntervalStart)", "$(context.dataIntervalEnd)"],
    )
    kube.apply(namespace, daily("sales", load))
    # January 10 was loaded already, by a run made by hand for that time.
    done_before = run("sales-jan-10", "sales", params=[{"name": "day", "value": "2026-01-10"}])
    done_before["metadata"]["annotations"] = {"sluice.dev/scheduled-time": "2026-01-10T00:00:00Z"}
    kube.apply(namespace, done_before)
    assert kube.wait_run(namespace, "sales-jan-10")["status"]["phase"] == "Succeeded"

    listed = listing(kube, namespace, "january")
    kube.apply(
        namespace,
        backfill(
            "january", "sales", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z", maxConcurrent=3
        ),
    )
    # Every change to its runs, in the API server's order: how many were active at any moment.
    phases: dict[str, str] = {}
    created: list[str] = []
    most_active = 0
    for change in run_changes(kube, namespace, "january", listed["metadata"]["resourceVersion"], 240):
        obj = change["object"]
        name = obj["metadata"]["name"]
        if change["type"] == "ADDED":  # a run made again would show its date twice
            created.append(obj["metadata"]["annotations"]["sluice.dev/scheduled-date"])
        phases[name] = (
            "Deleted" if change["type"] == "DELETED" else (obj.get("status") or {}).get("phase", "")
        )
        most_active = max(most_active, sum(1 for p in phases.values() if p not in FINISHED | {"Deleted"}))
        if len(phases) == 30 and all(p == "Succeeded" for p in phases.values()):
            break
    assert most_active == 3
    expected = [
        (datetime(2026, 1, 2, tzinfo=UTC) + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(31)
    ]
    expected.remove("2026-01-10")
    assert created == expected  # oldest first, each date once, the one already loaded skipped

    status = wait_for(
        "the backfill to succeed",
        lambda: (s := backfill_status(kube, namespace, "january")).get("phase") == "Succeeded" and s,
    )
    assert (status["total"], status["done"], status["alreadyLoaded"], status["failed"]) == (31, 31, 1, 0)
    table = kube.kubectl("get", "backfills", "-n", namespace).stdout.split()
    assert table[:8] == ["NAME", "PIPELINE", "STATUS", "DONE", "RUNNING", "FAILED", "TOTAL", "AGE"]
    assert table[8:15] == ["january", "sales", "Succeeded", "31", "0", "0", "31"]
    # A run loads its interval: January 2's is [Jan 1, Jan 2], its param from the schedule's.
    first = next(
        r
        for r in runs_of(kube, namespace, "january")
        if r["metadata"]["annotations"]["sluice.dev/scheduled-date"] == "2026-01-02"
    )
    [pod] = kube.pods(namespace, first["metadata"]["name"])
    assert pod.spec.containers[0].args == [
        "--day=2026-01-02",
        "2026-01-01T00:00:00+00:00",
        "2026-01-02T00:00:00+00:00",
    ]
    events = [
        e.reason
        for e in kube.core.list_namespaced_event(namespace).items
        if e.involved_object.name == "january"
    ]
    assert "Started" in events and "Succeeded" in events


def test_cancelling_a_backfill_stops_its_runs_and_starts_no_more(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        daily("slow", task("load", duration="10m")),
        backfill("spring", "slow", start="2026-03-01T00:00:00Z", end="2026-04-01T00:00:00Z", maxConcurrent=2),
    )
    running = wait_for(
        "two runs running",
        lambda: (s := backfill_status(kube, namespace, "spring")).get("running") == 2 and s,
    )
    assert running["phase"] == "Running" and running["pending"] == 29
    kube.kubectl(
        "patch", "backfill", "spring", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancelled":true}}'
    )
    status = wait_for(
        "the backfill to end cancelled",
        lambda: (s := backfill_status(kube, namespace, "spring")).get("completionTime") and s,
    )
    assert status["phase"] == "Cancelled" and status["running"] == 0
    runs = runs_of(kube, namespace, "spring")
    assert sorted(r["status"]["phase"] for r in runs) == ["Cancelled", "Cancelled"]


def test_a_backfill_range_is_checked_at_apply_time(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    backwards = backfill("backwards", "sales", start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z")
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(backwards), check=False)
    assert result.returncode != 0 and "spec.start must be before spec.end" in result.stderr
    kube.apply(
        namespace, backfill("fixed", "sales", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z")
    )
    moved = json.dumps({"spec": {"end": "2026-03-01T00:00:00Z"}})
    result = kube.kubectl(
        "patch", "backfill", "fixed", "-n", namespace, "--type=merge", "-p", moved, check=False
    )
    assert result.returncode != 0 and "spec.end cannot be changed" in result.stderr
    # Absent (false) at creation: setting it later would change what is loaded.
    rerun = json.dumps({"spec": {"rerunSucceeded": True}})
    result = kube.kubectl(
        "patch", "backfill", "fixed", "-n", namespace, "--type=merge", "-p", rerun, check=False
    )
    assert result.returncode != 0 and "spec.rerunSucceeded cannot be changed" in result.stderr


def test_an_operator_killed_mid_backfill_goes_on_without_running_a_date_twice(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Every run object ever made for it, from a watch that misses none.
    listed = listing(kube, namespace, "ten")
    added: list[str] = []
    backfill_done = threading.Event()

    def watch_added() -> None:
        for change in run_changes(kube, namespace, "ten", listed["metadata"]["resourceVersion"], 150):
            if change["type"] == "ADDED":
                added.append(change["object"]["metadata"]["uid"])
            if backfill_done.is_set():
                return

    watcher = threading.Thread(target=watch_added, daemon=True)
    watcher.start()
    kube.apply(
        namespace,
        daily("sales", task("load", duration="2s")),
        backfill("ten", "sales", start="2026-05-01T00:00:00Z", end="2026-05-11T00:00:00Z", maxConcurrent=2),
    )
    wait_for("a run done", lambda: (backfill_status(kube, namespace, "ten").get("done") or 0) >= 1)
    operator.kill()
    operator.start()
    status = wait_for(
        "the backfill to succeed",
        lambda: (s := backfill_status(kube, namespace, "ten")).get("phase") == "Succeeded" and s,
        timeout=120,
    )
    assert status["outcomes"] == "S" * 10
    runs = runs_of(kube, namespace, "ten")
    dates = sorted(r["metadata"]["annotations"]["sluice.dev/scheduled-date"] for r in runs)
    assert dates == [f"2026-05-{day:02d}" for day in range(2, 12)]
    # Each name was one object all along: no run was deleted and made again.
    wait_for("the watch to have seen the ten runs", lambda: len(added) >= len(runs))
    backfill_done.set()
    assert sorted(added) == sorted(r["metadata"]["uid"] for r in runs)


def test_a_run_deleted_mid_way_counts_failed_and_a_deleted_pipeline_fails_the_backfill(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        daily("slow", task("load", duration="10m")),
        backfill("june", "slow", start="2026-06-01T00:00:00Z", end="2026-06-04T00:00:00Z"),
    )

    def its_runs() -> list[dict[str, Any]]:
        return runs_of(kube, namespace, "june")

    [first] = wait_for("its first run", its_runs)
    kube.kubectl("delete", "pipelinerun", first["metadata"]["name"], "-n", namespace, "--wait=true")
    status = wait_for(
        "the deletion counted and the next run started",
        lambda: (
            (s := backfill_status(kube, namespace, "june")).get("failed") == 1 and s.get("running") == 1 and s
        ),
    )
    assert status["outcomes"] == "FR."
    names = [r["metadata"]["name"] for r in its_runs()]
    assert len(names) == 1 and names[0] != first["metadata"]["name"]  # June 2 not made again
    kube.kubectl("delete", "pipeline", "slow", "-n", namespace, "--wait=true")
    status = wait_for(
        "the backfill to fail",
        lambda: (s := backfill_status(kube, namespace, "june")).get("phase") == "Failed" and s,
    )
    reason = next(c for c in status["conditions"] if c["type"] == "Succeeded")["reason"]
    assert reason == "PipelineNotFound"
