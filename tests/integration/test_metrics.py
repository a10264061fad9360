"""The operator's Prometheus endpoint reports what it did."""

from __future__ import annotations

import urllib.request

import pytest

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def try_scrape(port: int) -> dict[str, float] | None:
    try:
        return scrape(port)
    except OSError:  # the operator is still starting
        return None


def test_metrics_count_pods_runs_and_reconciles(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    before = wait_for("the metrics endpoint", lambda: try_scrape(operator.metrics_port))
    kube.apply(namespace, pipeline("m", [task("a"), task("b", "a"), task("c", fail=True)]), run("m-1", "m"))
    assert kube.wait_run(namespace, "m-1")["status"]["phase"] == "Failed"
    finished = 'sluice_runs_finished_total{phase="Failed"}'

    passes = 'sluice_reconciles_total{kind="run",result="ok"}'

    def counted() -> dict[str, float] | None:
        # Counted just after the status write that wait_run saw, and the pass
        # that wrote it when that pass returns.
        now = scrape(operator.metrics_port)
        done = (
            now.get(finished, 0) > before.get(finished, 0) and now.get(passes, 0) - before.get(passes, 0) >= 3
        )
        return now if done else None

    after = wait_for("the finished run to be counted", counted)

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew("sluice_pods_created_total") >= 3
    assert grew('sluice_runs_finished_total{phase="Failed"}') >= 1
    assert grew(passes) >= 3
    assert after['sluice_reconcile_duration_seconds_count{kind="run"}'] > 0
    assert after["sluice_leader"] == 1
    assert "sluice_work_queue_depth" in after
