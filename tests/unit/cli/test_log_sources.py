"""`kubectl sluice logs`: which pods' logs, found by labels, newest attempt first."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.views.log_sources import log_sources, task_pods
from sluice.views.run_view import run_view
from tests.unit.cli.runs import entry, run_object, spec_task


def pod(
    name: str, task: str, attempt: int, instance: int | None = None, started: bool = True
) -> dict[str, Any]:
    own = {"sluice.dev/task": task, "sluice.dev/attempt": str(attempt), "sluice.dev/run": "etl-1"}
    if instance is not None:
        own["sluice.dev/instance"] = str(instance)
    state = {"terminated": {"exitCode": 0}} if started else {"waiting": {"reason": "ContainerCreating"}}
    return {
        "metadata": {"name": name, "labels": own},
        "status": {"phase": "Succeeded" if started else "Pending", "containerStatuses": [{"state": state}]},
    }


RUN = run_object(
    [spec_task("extract"), spec_task("load", "extract"), spec_task("fan", "extract", matrix={"axes": []})],
    [
        entry("extract", "Succeeded", podName="p-extract"),
        entry("load", "Failed", podName="p-load-2", attempts=2, message="line 1\nTraceback: boom"),
        entry("fan", "Succeeded"),
    ],
)
PODS = task_pods(
    [
        pod("p-extract", "extract", 0),
        pod("p-load-1", "load", 0),
        pod("p-load-2", "load", 1),
        pod("p-fan-0", "fan", 0, instance=0),
        pod("p-fan-1", "fan", 0, instance=1),
        {"metadata": {"name": "unrelated", "labels": {}}},
    ]
)


def test_newest_attempt_of_each_task_and_instance_in_dag_order() -> None:
    sources = log_sources(run_view(RUN), PODS)
    assert [(s.label, s.pod.name if s.pod else None) for s in sources] == [
        ("extract", "p-extract"),
        ("load #2", "p-load-2"),
        ("fan[0]", "p-fan-0"),
        ("fan[1]", "p-fan-1"),
    ]


def test_an_attempt_and_an_instance_can_be_asked_for() -> None:
    first = log_sources(run_view(RUN), PODS, task="load", attempt=1)
    assert [s.pod.name for s in first if s.pod] == ["p-load-1"]
    one = log_sources(run_view(RUN), PODS, task="fan", instance=1)
    assert [s.pod.name for s in one if s.pod] == ["p-fan-1"]


def test_unknown_task_or_attempt_names_the_choices() -> None:
    with pytest.raises(LookupError, match=r'no task "lod" \(tasks: extract, load, fan\)'):
        log_sources(run_view(RUN), PODS, task="lod")
    with pytest.raises(LookupError, match=r"no attempt 3 with a pod \(attempts with pods: 1, 2\)"):
        log_sources(run_view(RUN), PODS, task="load", attempt=3)


def test_a_gone_pod_is_said_so_with_the_tail_the_status_keeps() -> None:
    survivors = [p for p in PODS if p.task != "load"]
    (load,) = log_sources(run_view(RUN), survivors, task="load")
    assert load.pod is None
    assert "pod p-load-2 is gone" in (load.note or "")
    assert load.kept == "line 1\nTraceback: boom"
    (extract,) = log_sources(run_view(RUN), [], task="extract")
    assert "keeps no log" in (extract.note or "") and extract.kept is None


def test_a_task_that_never_started_is_not_a_gone_pod() -> None:
    obj = run_object([spec_task("a"), spec_task("b", "a")], [entry("a", "Running", podName="p-a")])
    sources = log_sources(run_view(obj), task_pods([pod("p-a", "a", 0, started=False)]))
    assert [s.label for s in sources] == ["a"]  # b is Pending: nothing to say
    assert sources[0].pod is not None and not sources[0].pod.started
    (b,) = log_sources(run_view(obj), [], task="b")
    assert "has not started" in (b.note or "")


def test_a_reused_task_points_at_the_run_it_came_from() -> None:
    obj = run_object([spec_task("a")], [entry("a", "Succeeded", reason="Reused", podName="old-a")])
    obj["spec"] = {"rerunOf": {"name": "etl-0"}}
    (a,) = log_sources(run_view(obj), [], task="a")
    assert a.note == "a: reused from etl-0; its log is that run's"


def test_a_fanned_out_tasks_gone_pods_are_said_so_per_instance_with_their_tails() -> None:
    obj = run_object(
        [spec_task("fan", matrix={"axes": [{"name": "r", "values": ["eu", "us"]}]})],
        [
            entry(
                "fan",
                "Failed",
                instances=[
                    {"index": 0, "phase": "Succeeded", "podName": "p-fan-0"},
                    {"index": 1, "phase": "Failed", "podName": "p-fan-1", "message": "no data for us"},
                ],
            )
        ],
    )
    sources = log_sources(run_view(obj), [])
    assert [(s.label, s.pod, s.kept) for s in sources] == [
        ("fan[0]", None, None),
        ("fan[1]", None, "no data for us"),
    ]
    assert "fan[1]: pod p-fan-1 is gone" in (sources[1].note or "")
    (one,) = log_sources(run_view(obj), [], task="fan", instance=1)
    assert one.label == "fan[1]" and one.kept == "no data for us"


def test_instances_only_of_fanned_out_tasks_and_a_skipped_task_says_so() -> None:
    with pytest.raises(LookupError, match='task "load" is not fanned out'):
        log_sources(run_view(RUN), PODS, task="load", instance=0)
    # without a task, --instance picks among the fanned-out ones only
    assert [s.label for s in log_sources(run_view(RUN), PODS, instance=1)] == ["fan[1]"]
    obj = run_object([spec_task("a")], [entry("a", "Skipped", reason="UpstreamNotSucceeded")])
    (a,) = log_sources(run_view(obj), [], task="a")
    assert a.note == "a: skipped, so it has no log (UpstreamNotSucceeded)"


def test_a_live_pod_carries_the_tail_for_when_its_node_cannot_serve_the_log() -> None:
    (load,) = log_sources(run_view(RUN), PODS, task="load")
    assert load.pod is not None and load.pod.name == "p-load-2" and load.kept == "line 1\nTraceback: boom"
    (first,) = log_sources(run_view(RUN), PODS, task="load", attempt=1)
    assert first.kept is None  # the status's tail is the newest attempt's
