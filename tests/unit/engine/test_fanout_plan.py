"""A run's plan with fanned-out tasks: instances, their limits and their outcomes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.api.v1alpha1 import PipelineRunStatus, PipelineSpec
from sluice.engine import run_plan
from sluice.engine.observe import TaskObservation
from sluice.engine.run_plan import RunPlan, base_size, plan_run
from sluice.engine.run_source import Fetched
from tests.builders import T0, spec_of
from tests.unit.engine.test_run_plan import LATER, facts, outcome, started, task_status


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


def test_a_fan_out_the_status_cannot_hold_fails_and_one_already_running_is_never_refused_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = spec_of(
        [
            {"name": "s", "when": [{"input": "a", "operator": "in", "values": ["b"]}]},
            {
                "name": "x",
                "dependsOn": ["s"],
                "triggerRule": "AllDone",
                "matrix": {"axes": [{"name": "v", "from": "$(params.n)"}]},
            },
            {"name": "b"},
            {"name": "y", "dependsOn": ["b"], "matrix": {"axes": [{"name": "v", "from": "$(params.n)"}]}},
        ],
        params=[{"name": "n"}],
    )
    status = started(spec, params=[{"name": "n", "value": json.dumps(list(range(1000)))}])
    # Room for one 1,000-instance fan-out, not two.
    monkeypatch.setattr(run_plan, "STATUS_SIZE_LIMIT", base_size("run-1", spec, None) + 250_000)
    first = plan_run(facts(status))
    assert (
        task_status(first, "x").phase == "Running"
        and len([s for s in first.starts if s.task.startswith("x[")]) == 1000
    )
    running = {s.task: TaskObservation(s.name, "Running", T0) for s in first.starts}
    # b succeeds: y is cleared to run, in a later round than x is expanded again.
    later = step(first, {**running, "b": ok("b")})
    assert task_status(later, "x").phase == "Running" and len(task_status(later, "x").instances) == 1000
    y = task_status(later, "y")
    assert (y.phase, y.reason) == ("Failed", "TooManyInstances") and "KB" in y.message
    assert not [s for s in later.starts if s.task.startswith("y[")]
    again = step(later, {**running, "b": ok("b")})
    assert again.status is None and again.starts == ()


def test_a_literal_fan_out_too_big_for_a_runs_status_is_refused_before_it_starts() -> None:
    values = ["v" * 60 + str(i) for i in range(1000)]
    spec = spec_of(
        [{"name": f"t{j}", "matrix": {"axes": [{"name": "a", "values": values}]}} for j in range(6)]
    )
    body = {"metadata": {"name": "sales"}, "spec": spec.to_api()}
    plan = plan_run(facts(PipelineRunStatus(), source=Fetched("sales", body)))
    assert plan.status is not None and outcome(plan) == ("Failed", "RunTooLarge")


def test_a_rerun_does_not_let_a_dependent_run_before_the_fan_out_it_waits_for_runs_again() -> None:
    spec = spec_of(
        [
            {"name": "u"},
            {
                "name": "x",
                "dependsOn": ["u"],
                "triggerRule": "AllDone",
                "matrix": {"axes": [{"name": "v", "values": ["a", "b"]}]},
            },
            {"name": "d", "dependsOn": ["x"]},
        ]
    )
    old = started(
        spec,
        phase="Failed",
        completion_time=LATER,
        tasks=[
            {"name": "u", "phase": "Failed"},
            {
                "name": "x",
                "phase": "Failed",
                "instances": [
                    {"index": 0, "phase": "Succeeded", "values": "v=a"},
                    {"index": 1, "phase": "Failed", "values": "v=b"},
                ],
            },
            {"name": "d", "phase": "Skipped"},
        ],
    )
    source = Fetched("run-0", {"metadata": {"name": "run-0"}, "status": old.to_api()})
    rerun = {"rerunOf": {"name": "run-0"}}
    admitted = plan_run(facts(spec=rerun, source=source))
    assert admitted.status is not None
    first = plan_run(facts(admitted.status, spec=rerun))
    assert [s.task for s in first.starts] == ["u"]
    assert task_status(first, "d").phase == "Pending"
    # Cancelled before x runs again: its reused instance stays Succeeded.
    cancelled = step(
        first, {"u": TaskObservation(first.starts[0].name, "Running", T0)}, spec={**rerun, "cancelled": True}
    )
    x = task_status(cancelled, "x")
    assert x.phase == "Cancelled"
    assert [(i.index, i.phase) for i in x.instances] == [(0, "Succeeded"), (1, "Cancelled")]


def test_a_cancelled_rerun_keeps_reused_instances_past_a_gap_in_their_indices() -> None:
    spec = fan()
    status = started(
        spec,
        phase="Running",
        tasks=[
            {"name": "list", "phase": "Succeeded", "results": [{"name": "files", "value": '["a","b","c"]'}]},
            {
                "name": "load",
                "phase": "Pending",
                "instances": [
                    {"index": 0, "phase": "Succeeded", "values": "f=a"},
                    {"index": 2, "phase": "Succeeded", "values": "f=c"},
                ],
            },
            {"name": "sum", "phase": "Pending"},
        ],
    )
    stopped = plan_run(facts(status, spec={"pipelineRef": {"name": "sales"}, "cancelled": True}))
    assert [(i.index, i.phase) for i in task_status(stopped, "load").instances] == [
        (0, "Succeeded"),
        (1, "Cancelled"),
        (2, "Succeeded"),
    ]


def test_any_failed_downstream_of_a_fan_out_waits_for_every_instance_then_reads_all_results() -> None:
    spec = fan(rule="AnyFailed")
    plan = plan_run(facts(started(spec), tasks={"list": listed(["a", "b"])}))
    seen = {
        "list": listed(["a", "b"]),
        "load[0]": failed("load[0]", attempt=1),
        "load[1]": TaskObservation("p", "Running", T0),
    }
    waiting = step(plan, seen)
    assert [s.task for s in waiting.starts if s.task == "sum"] == []
    assert task_status(waiting, "sum").phase == "Pending"
    seen["load[1]"] = ok("load[1]", "4")
    done = step(waiting, seen)
    assert [s.task for s in done.starts] == ["sum"]
    assert done.starts[0].pod["spec"]["containers"][0]["args"] == ['[null,"4"]']


def test_a_lost_instance_pod_is_a_failed_attempt_of_that_instance_alone() -> None:
    plan = plan_run(facts(started(fan()), tasks={"list": listed(["a", "b"])}))
    seen = {"list": listed(["a", "b"]), "load[1]": TaskObservation(plan.starts[1].name, "Running", T0)}
    # load[0]'s pod is gone and no observation covers it.
    lost = step(plan, seen)
    # Counted as its failed first attempt (its retry is due at once), load[1] untouched.
    assert [(s.task, s.attempt) for s in lost.starts] == [("load[0]", 1)]
    first, second = task_status(lost, "load").instances
    assert (first.phase, first.attempts, first.pod_name) == ("Running", 2, lost.starts[0].name)
    assert (second.phase, second.attempts) == ("Running", None)
    no_retries = fan()
    no_retries.tasks[1].retries = None
    plan = plan_run(facts(started(no_retries), tasks={"list": listed(["a"])}))
    gone = step(plan, {"list": listed(["a"])})
    entry = task_status(gone, "load").instances[0]
    assert (entry.phase, entry.reason) == ("Failed", "PodLost") and "disappeared" in entry.message


def test_when_skips_a_fanned_out_task_as_a_whole_and_a_finally_task_may_fan_out() -> None:
    spec = spec_of(
        [
            {
                "name": "t",
                "when": [{"input": "$(params.go)", "operator": "in", "values": ["yes"]}],
                "matrix": {"axes": [{"name": "v", "values": [1, 2]}]},
            }
        ],
        final=[
            {
                "name": "notify",
                "args": ["$(matrix.who)"],
                "matrix": {"axes": [{"name": "who", "values": ["ops", "data"]}]},
            }
        ],
        params=[{"name": "go"}],
    )
    plan = plan_run(facts(started(spec, params=[{"name": "go", "value": "no"}])))
    t = task_status(plan, "t")
    assert (t.phase, t.reason, t.instances) == ("Skipped", "WhenConditionFalse", None)
    assert [s.pod["spec"]["containers"][0]["args"] for s in plan.starts] == [["ops"], ["data"]]


def test_instance_messages_share_the_runs_message_budget() -> None:
    from sluice.engine.run_status import MESSAGE_BUDGET

    spec = fan({"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}]})
    files = [str(i) for i in range(300)]
    plan = plan_run(facts(started(spec), tasks={"list": listed(files)}))
    noisy = {
        s.task: TaskObservation(s.name, "Failed", T0, LATER, 1, "Error", "x" * 1000, attempt=1)
        for s in plan.starts
    }
    final = step(plan, {"list": listed(files), **noisy})
    messages = [i.message or "" for i in task_status(final, "load").instances]
    assert sum(len(m) for m in messages) <= MESSAGE_BUDGET and all(m.endswith("x") for m in messages)


def test_a_gathered_result_too_big_for_one_argument_fails_its_reader_clearly() -> None:
    plan = plan_run(facts(started(fan()), tasks={"list": listed(list(range(40)))}))
    seen: dict[str, TaskObservation] = {"list": listed(list(range(40)))}
    seen.update({s.task: ok(s.task, "r" * 3900) for s in plan.starts})
    done = step(plan, seen)
    total = task_status(done, "sum")
    assert (total.phase, total.reason) == ("Failed", "ValueTooLarge") and "workspace" in total.message


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
    assert [(i.index, i.phase) for i in task_status(admitted, "load").instances] == [
        (0, "Succeeded"),
        (1, "Pending"),
    ]
    first = plan_run(facts(admitted.status, spec={"rerunOf": {"name": "run-0"}}))
    assert [s.task for s in first.starts] == ["load[1]"]
    done = step(first, {"load[1]": ok("load[1]", "6")}, spec={"rerunOf": {"name": "run-0"}})
    assert done.starts[0].pod["spec"]["containers"][0]["args"] == ['["5","6"]']


def test_a_literal_matrix_counts_in_the_size_check_before_the_run_starts() -> None:
    spec = spec_of([{"name": "t", "matrix": {"axes": [{"name": "a", "values": list(range(1000))}]}}])
    body = {"metadata": {"name": "sales"}, "spec": spec.to_api()}
    plan = plan_run(facts(PipelineRunStatus(), source=Fetched("sales", body)))
    assert plan.replan  # 1,000 instances fit in one run's status


def test_fanning_out_again_over_a_big_gathered_result_is_not_refused_as_an_argument() -> None:
    # The gathered array is read by the operator (matrix from), never put in a pod.
    spec = spec_of(
        [
            {
                "name": "load",
                "results": [{"name": "part"}],
                "matrix": {"axes": [{"name": "i", "values": list(range(200))}]},
            },
            {
                "name": "again",
                "dependsOn": ["load"],
                "args": ["$(matrix.p)"],
                "matrix": {"axes": [{"name": "p", "from": "$(tasks.load.results.part)"}]},
            },
        ]
    )
    plan = plan_run(facts(started(spec)))
    done = {
        s.task: TaskObservation(s.name, "Succeeded", T0, LATER, 0, results=(("part", "p" * 900 + s.task),))
        for s in plan.starts
    }
    nxt = step(plan, done)
    again = task_status(nxt, "again")
    assert again.phase == "Running" and len(nxt.starts) == 200


def test_a_running_fan_out_keeps_its_room_when_expanded_again_beside_one_that_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    axis = {"axes": [{"name": "v", "from": "$(params.n)"}]}
    spec = spec_of(
        [
            {"name": "b"},
            {"name": "x", "dependsOn": ["b"], "matrix": axis},
            {"name": "y", "dependsOn": ["b"], "matrix": axis},
        ],
        params=[{"name": "n"}],
    )
    status = started(spec, params=[{"name": "n", "value": json.dumps(list(range(1000)))}])
    monkeypatch.setattr(run_plan, "STATUS_SIZE_LIMIT", base_size("run-1", spec, None) + 250_000)
    b = {"b": ok("b")}
    first = plan_run(facts(status, tasks=b))
    assert task_status(first, "x").phase == "Running" and task_status(first, "y").reason == "TooManyInstances"
    # Next pass: x and y are expanded again in the same round; x's room is its own.
    again = step(first, b | {s.task: TaskObservation(s.name, "Running", T0) for s in first.starts})
    assert again.status is None and again.starts == ()
