"""A run's plan with fanned-out tasks: instances, their limits and their outcomes."""

from __future__ import annotations

import json
from typing import Any

from sluice.api.v1alpha1 import PipelineRunStatus, PipelineSpec
from sluice.engine.observe import TaskObservation
from sluice.engine.run_plan import RunPlan, plan_run
from sluice.engine.run_source import Fetched
from tests.builders import T0, spec_of
from tests.unit.engine.test_run_plan import LATER, facts, started, task_status


def listed(values: list[Any], **extra: Any) -> TaskObservation:
    """The ``list`` task succeeded, writing ``files`` as a JSON array."""
    return TaskObservation(
        "pod-list", "Succeeded", completion_time=T0, results=(("files", json.dumps(values)),), **extra
    )


def fan(matrix: dict[str, Any] | None = None, rule: str = "AllSucceeded", **spec: Any) -> PipelineSpec:
    return spec_of(
        [
            {"name": "list", "results": [{"name": "files"}]},
            {
                "name": "load",
                "dependsOn": ["list"],
                "args": ["--file=$(matrix.f)"],
                "results": [{"name": "rows"}],
                "retries": {"limit": 1, "backoff": {"initialSeconds": 0}},
                "matrix": matrix or {"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}]},
            },
            {
                "name": "sum",
                "dependsOn": ["load"],
                "triggerRule": rule,
                "args": ["$(tasks.load.results.rows)"],
            },
        ],
        **spec,
    )


def step(plan: RunPlan, tasks: dict[str, TaskObservation], now: str = LATER, **extra: Any) -> RunPlan:
    assert plan.status is not None
    return plan_run(facts(plan.status, tasks=tasks, now=now, **extra))


def instances(plan: RunPlan, name: str = "load") -> list[tuple[int, str]]:
    return [(i.index, i.phase) for i in task_status(plan, name).instances or ()]


def ok(key: str, rows: str | None = None, attempt: int = 0) -> TaskObservation:
    results = (("rows", rows),) if rows is not None else None
    return TaskObservation(
        f"pod-{key}-{attempt}", "Succeeded", completion_time=LATER, attempt=attempt, results=results
    )


def failed(key: str, attempt: int = 0) -> TaskObservation:
    return TaskObservation(
        f"pod-{key}-{attempt}",
        "Failed",
        completion_time=LATER,
        attempt=attempt,
        exit_code=1,
        reason="Error",
        message="boom",
    )


def test_a_result_array_fans_the_task_out_one_pod_per_value_with_its_value() -> None:
    plan = plan_run(facts(started(fan()), tasks={"list": listed(["a.csv", "b.csv", "c.csv"])}))
    assert [s.task for s in plan.starts] == ["load[0]", "load[1]", "load[2]"]
    args = [s.pod["spec"]["containers"][0]["args"] for s in plan.starts]
    assert args == [["--file=a.csv"], ["--file=b.csv"], ["--file=c.csv"]]
    assert len({s.name for s in plan.starts}) == 3
    assert instances(plan) == [(0, "Running"), (1, "Running"), (2, "Running")]
    load = task_status(plan, "load")
    assert load.phase == "Running" and load.instances[1].values == "f=b.csv"
    assert task_status(plan, "sum").phase == "Pending"


def test_the_same_facts_expand_to_the_same_instances_so_a_repeated_pass_creates_nothing_new() -> None:
    first = plan_run(facts(started(fan()), tasks={"list": listed(["a", "b"])}))
    seen = {"list": listed(["a", "b"])} | {
        s.task: TaskObservation(s.name, "Running", T0) for s in first.starts
    }
    again = step(first, seen, now=T0)
    assert again.starts == () and again.status is None


def test_instances_wait_for_the_matrix_parallelism_and_the_runs() -> None:
    plan = plan_run(
        facts(
            started(fan({"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}], "parallelism": 2})),
            tasks={"list": listed(list("abcde"))},
        )
    )
    assert [s.task for s in plan.starts] == ["load[0]", "load[1]"]
    assert instances(plan)[2:] == [(2, "Pending"), (3, "Pending"), (4, "Pending")]
    seen = {
        "list": listed(list("abcde")),
        "load[0]": ok("load[0]", "1"),
        "load[1]": TaskObservation("p1", "Running", T0),
    }
    nxt = step(plan, seen)
    assert [s.task for s in nxt.starts] == ["load[2]"]
    run_limited = plan_run(facts(started(fan(parallelism=3)), tasks={"list": listed(list("abcde"))}))
    assert [s.task for s in run_limited.starts] == ["load[0]", "load[1]", "load[2]"]


def test_dependents_wait_for_every_instance_and_read_their_results_gathered_in_order() -> None:
    plan = plan_run(facts(started(fan()), tasks={"list": listed(["a", "b", "c"])}))
    seen = {"list": listed(["a", "b", "c"]), "load[0]": ok("load[0]", "10"), "load[2]": ok("load[2]", "30")}
    seen["load[1]"] = TaskObservation("p", "Running", T0)
    waiting = step(plan, seen)
    assert waiting.starts == () and task_status(waiting, "sum").phase == "Pending"
    seen["load[1]"] = ok("load[1]", "20")
    done = step(waiting, seen)
    assert [s.task for s in done.starts] == ["sum"]
    assert done.starts[0].pod["spec"]["containers"][0]["args"] == ['["10","20","30"]']
    load = task_status(done, "load")
    assert load.phase == "Succeeded" and load.completion_time == LATER


def test_an_empty_list_skips_the_task_and_its_dependents_follow_their_trigger_rule() -> None:
    plan = plan_run(facts(started(fan()), tasks={"list": listed([])}))
    load = task_status(plan, "load")
    assert (load.phase, load.reason) == ("Skipped", "EmptyMatrix")
    assert task_status(plan, "sum").phase == "Skipped"
    assert plan.status is not None and plan.status.phase == "Succeeded"
    all_done = plan_run(facts(started(fan(rule="AllDone")), tasks={"list": listed([])}))
    assert [s.task for s in all_done.starts] == ["sum"]
    assert all_done.starts[0].pod["spec"]["containers"][0]["args"] == ["[]"]


def test_a_failing_instance_is_retried_alone_then_fails_the_task_and_trigger_rules_count_instances() -> None:
    spec = fan(rule="AllFailed")
    plan = plan_run(facts(started(spec), tasks={"list": listed(["a", "b"])}))
    seen = {"list": listed(["a", "b"]), "load[0]": ok("load[0]", "1"), "load[1]": failed("load[1]")}
    retry = step(plan, seen)
    assert [(s.task, s.attempt) for s in retry.starts] == [("load[1]", 1)]
    seen["load[1]"] = failed("load[1]", attempt=1)
    final = step(retry, seen)
    load = task_status(final, "load")
    assert load.phase == "Failed" and load.reason == "InstanceFailed"
    assert "instance 1 (f=b)" in load.message and load.instances[1].attempts == 2
    # AllFailed: one instance succeeded, so not every upstream instance failed.
    assert task_status(final, "sum").phase == "Skipped"
    assert final.status is not None and final.status.phase == "Failed"


def test_a_bad_result_fails_the_fanned_out_task_once_with_a_specific_reason() -> None:
    plan = plan_run(
        facts(
            started(fan()),
            tasks={
                "list": TaskObservation(
                    "pod-list", "Succeeded", completion_time=T0, results=(("files", "a,b"),)
                )
            },
        )
    )
    load = task_status(plan, "load")
    assert (load.phase, load.reason) == ("Failed", "InvalidMatrix") and "JSON array" in load.message
    assert plan.starts == ()
    again = step(
        plan,
        {"list": TaskObservation("pod-list", "Succeeded", completion_time=T0, results=(("files", "a,b"),))},
        now="2026-11-24T11:00:00Z",
    )
    assert again.status is None


def test_fan_outs_past_what_one_run_holds_fail_the_later_task_and_always_the_same_one() -> None:
    spec = spec_of(
        [
            {"name": "a", "matrix": {"axes": [{"name": "x", "from": "$(params.n)"}]}},
            {"name": "b", "matrix": {"axes": [{"name": "x", "from": "$(params.n)"}]}},
        ],
        params=[{"name": "n"}],
    )
    many = json.dumps(list(range(1000)))
    status = started(spec, params=[{"name": "n", "value": many}])
    # 2,000 instances fit; make the limit bite with a smaller one for the test.
    from sluice.engine import run_plan

    original = run_plan.MAX_UNITS
    run_plan.MAX_UNITS = 1500
    try:
        plan = plan_run(facts(status))
    finally:
        run_plan.MAX_UNITS = original
    assert task_status(plan, "a").phase == "Running"
    b = task_status(plan, "b")
    assert (b.phase, b.reason) == ("Failed", "TooManyInstances")
    assert len(plan.starts) == 1000


def test_cancelling_cancels_running_and_pending_instances_and_stops_their_pods() -> None:
    spec = fan({"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}], "parallelism": 1})
    plan = plan_run(facts(started(spec), tasks={"list": listed(["a", "b"])}))
    seen = {"list": listed(["a", "b"]), "load[0]": TaskObservation(plan.starts[0].name, "Running", T0)}
    stopped = step(plan, seen, spec={"pipelineRef": {"name": "sales"}, "cancelled": True})
    assert stopped.stops == (plan.starts[0].name,)
    assert instances(stopped) == [(0, "Cancelled"), (1, "Cancelled")]
    assert task_status(stopped, "load").phase == "Cancelled"
    assert task_status(stopped, "load").instances[1].values == "f=b"


def test_a_rerun_runs_again_only_the_instances_that_did_not_succeed() -> None:
    old = started(
        fan(),
        phase="Failed",
        completion_time=LATER,
        tasks=[
            {"name": "list", "phase": "Succeeded", "results": [{"name": "files", "value": '["a","b"]'}]},
            {
                "name": "load",
                "phase": "Failed",
                "instances": [
                    {"index": 0, "phase": "Succeeded", "results": [{"name": "rows", "value": "5"}]},
                    {"index": 1, "phase": "Failed", "reason": "Error"},
                ],
            },
            {"name": "sum", "phase": "Skipped"},
        ],
    )
    source = Fetched("run-0", {"metadata": {"name": "run-0"}, "status": old.to_api()})
    admitted = plan_run(facts(spec={"rerunOf": {"name": "run-0"}}, source=source))
    assert admitted.status is not None
    assert [(i.index, i.phase) for i in task_status(admitted, "load").instances] == [(0, "Succeeded")]
    first = plan_run(facts(admitted.status, spec={"rerunOf": {"name": "run-0"}}))
    assert [s.task for s in first.starts] == ["load[1]"]
    done = step(first, {"load[1]": ok("load[1]", "6")}, spec={"rerunOf": {"name": "run-0"}})
    assert done.starts[0].pod["spec"]["containers"][0]["args"] == ['["5","6"]']


def test_a_literal_matrix_counts_in_the_size_check_before_the_run_starts() -> None:
    spec = spec_of([{"name": "t", "matrix": {"axes": [{"name": "a", "values": list(range(1000))}]}}])
    body = {"metadata": {"name": "sales"}, "spec": spec.to_api()}
    plan = plan_run(facts(PipelineRunStatus(), source=Fetched("sales", body)))
    assert plan.replan  # 1,000 instances fit in one run's status
