"""Results, `when`, trigger rules and finally tasks, end to end (kwok nodes;
a pod's `sim.sluice.dev/result` annotation becomes its termination message)."""

from __future__ import annotations

import pytest

from tests.builders import pipeline, run, task, tasks_by_name
from tests.integration.conftest import Kube, OperatorProcess

pytestmark = pytest.mark.integration


def args_of(kube: Kube, namespace: str, run_name: str, task_name: str) -> list[str]:
    [pod] = [p for p in kube.pods(namespace, run_name) if p.metadata.labels["sluice.dev/task"] == task_name]
    args: list[str] = pod.spec.containers[0].args
    return args


def test_results_flow_downstream_and_when_skips_like_airflow(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    count = task(
        "count",
        results=[{"name": "rows"}, {"name": "path"}],
        annotations={"sim.sluice.dev/result": "rows=0\npath=/workspace/orders.csv\n"},
    )
    load = task(
        "load", "count", when=[{"input": "$(tasks.count.results.rows)", "operator": "notin", "values": ["0"]}]
    )
    kube.apply(
        namespace,
        pipeline(
            "results",
            [
                count,
                load,
                task("index", "load"),
                task("audit", "load", triggerRule="NoneFailed", args=["--file=$(tasks.count.results.path)"]),
            ],
            **{"finally": [task("notify", args=["$(tasks.status)", "$(tasks.load.status)"])]},
        ),
        run("results-1", "results"),
    )
    obj = kube.wait_run(namespace, "results-1")
    tasks = tasks_by_name(obj)
    assert obj["status"]["phase"] == "Succeeded"
    assert tasks["count"]["results"] == [
        {"name": "path", "value": "/workspace/orders.csv"},
        {"name": "rows", "value": "0"},
    ]
    assert (tasks["load"]["phase"], tasks["load"]["reason"]) == ("Skipped", "WhenConditionFalse")
    assert '"0" notin' in tasks["load"]["message"]
    assert tasks["index"]["phase"] == "Skipped"
    assert tasks["audit"]["phase"] == "Succeeded"
    assert args_of(kube, namespace, "results-1", "audit") == ["--file=/workspace/orders.csv"]
    assert tasks["notify"]["phase"] == "Succeeded"
    assert args_of(kube, namespace, "results-1", "notify") == ["Succeeded", "Skipped"]


def test_failure_handlers_and_finally_tasks_see_the_outcome(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline(
            "outcome",
            [
                task("extract", fail=True),
                task("alert", "extract", triggerRule="AnyFailed"),
                task("load", "extract"),
            ],
            **{"finally": [task("cleanup", args=["$(tasks.status)", "$(tasks.extract.status)"])]},
        ),
        run("outcome-1", "outcome"),
    )
    obj = kube.wait_run(namespace, "outcome-1")
    tasks = tasks_by_name(obj)
    assert obj["status"]["phase"] == "Failed"
    assert [tasks[n]["phase"] for n in ("extract", "alert", "load", "cleanup")] == [
        "Failed",
        "Succeeded",
        "Skipped",
        "Succeeded",
    ]
    assert args_of(kube, namespace, "outcome-1", "cleanup") == ["Failed", "Failed"]
    cleanup_pod = next(
        p for p in kube.pods(namespace, "outcome-1") if p.metadata.labels["sluice.dev/task"] == "cleanup"
    )
    alert_pod = next(
        p for p in kube.pods(namespace, "outcome-1") if p.metadata.labels["sluice.dev/task"] == "alert"
    )
    assert cleanup_pod.metadata.creation_timestamp >= alert_pod.metadata.creation_timestamp


def test_oversized_result_fails_the_task_with_a_clear_reason(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    big = task(
        "dump", results=[{"name": "blob"}], annotations={"sim.sluice.dev/result": "blob=" + "x" * 4050}
    )
    kube.apply(namespace, pipeline("big", [big, task("next", "dump")]), run("big-1", "big"))
    obj = kube.wait_run(namespace, "big-1")
    dump = tasks_by_name(obj)["dump"]
    assert (dump["phase"], dump["reason"]) == ("Failed", "ResultTooLarge")
    assert "4050 bytes" in dump["message"] and "workspace" in dump["message"]
    assert tasks_by_name(obj)["next"]["phase"] == "Skipped"
