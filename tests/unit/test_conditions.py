"""Trigger rules, `when` expressions, finally tasks and results (pure logic)."""

import pytest

from sluice.api.v1alpha1 import PipelineSpec, TaskSpec, WhenExpression
from sluice.dag import InvalidPipeline, build_graph, ready_tasks, resolve_task_phases, trigger_verdict
from sluice.params import check_references
from sluice.results import declared_results, parse_results
from sluice.when import evaluate_when


@pytest.mark.parametrize(
    ("rule", "upstream", "verdict"),
    [
        ("AllSucceeded", ["Succeeded", "Succeeded"], "run"),
        ("AllSucceeded", ["Succeeded", "Running"], "wait"),
        ("AllSucceeded", ["Failed", "Running"], "skip"),
        ("AllSucceeded", ["Skipped", "Succeeded"], "skip"),
        ("AllDone", ["Failed", "Running"], "wait"),
        ("AllDone", ["Failed", "Skipped"], "run"),
        ("AnyFailed", ["Failed", "Running"], "run"),
        ("AnyFailed", ["Succeeded", "Running"], "wait"),
        ("AnyFailed", ["Succeeded", "Skipped"], "skip"),
        ("AllFailed", ["Failed", "Failed"], "run"),
        ("AllFailed", ["Failed", "Succeeded"], "skip"),
        ("AllFailed", ["Failed", "Running"], "wait"),
        ("NoneFailed", ["Succeeded", "Skipped"], "run"),
        ("NoneFailed", ["Succeeded", "Failed"], "skip"),
        ("NoneFailed", ["Succeeded", "Running"], "wait"),
        ("AllSucceeded", [], "run"),
    ],
)
def test_trigger_rules(rule: str, upstream: list[str], verdict: str) -> None:
    assert trigger_verdict(rule, upstream) == verdict


def pipeline(tasks: list[dict], final: list[dict] | None = None) -> PipelineSpec:
    spec: dict = {"tasks": [{"image": "busybox:1.36", **t} for t in tasks]}
    if final:
        spec["finally"] = [{"image": "busybox:1.36", **t} for t in final]
    return PipelineSpec.model_validate(spec)


def test_skip_propagates_like_airflow_and_none_failed_runs_after_a_skip() -> None:
    spec = pipeline(
        [
            {"name": "a"},
            {"name": "b", "dependsOn": ["a"]},
            {"name": "c", "dependsOn": ["b"]},
            {"name": "d", "dependsOn": ["b"], "triggerRule": "NoneFailed"},
        ]
    )
    graph = build_graph(spec)
    phases = resolve_task_phases(graph, {"a": "Succeeded"}, skipped_by_when=["b"])
    assert phases == {"a": "Succeeded", "b": "Skipped", "c": "Skipped", "d": "Pending"}
    assert ready_tasks(graph, phases) == ["d"]


def test_cleanup_task_with_any_failed_runs_on_failure_only() -> None:
    graph = build_graph(
        pipeline([{"name": "a"}, {"name": "alert", "dependsOn": ["a"], "triggerRule": "AnyFailed"}])
    )
    assert resolve_task_phases(graph, {"a": "Succeeded"})["alert"] == "Skipped"
    phases = resolve_task_phases(graph, {"a": "Failed"})
    assert ready_tasks(graph, phases) == ["alert"]


def test_finally_tasks_wait_for_every_task_then_run_whatever_the_outcome() -> None:
    graph = build_graph(
        pipeline([{"name": "a"}, {"name": "b", "dependsOn": ["a"]}], final=[{"name": "notify"}])
    )
    assert ready_tasks(graph, resolve_task_phases(graph, {})) == ["a"]
    assert ready_tasks(graph, resolve_task_phases(graph, {"a": "Running"})) == []
    phases = resolve_task_phases(graph, {"a": "Failed"})
    assert phases["b"] == "Skipped"
    assert ready_tasks(graph, phases) == ["notify"]


def test_finally_task_cannot_depend_on_anything() -> None:
    with pytest.raises(InvalidPipeline) as error:
        build_graph(pipeline([{"name": "a"}], final=[{"name": "f", "dependsOn": ["a"]}]))
    assert error.value.reason == "InvalidFinally"


def test_when_expressions() -> None:
    when = [WhenExpression(input="$(params.env)", operator="in", values=["prod", "staging"])]
    assert evaluate_when(when, {"params.env": "prod"}) is None
    why = evaluate_when(when, {"params.env": "dev"})
    assert why is not None and '"dev" in' in why
    notin = [WhenExpression(input="$(tasks.count.results.rows)", operator="notin", values=["0"])]
    assert evaluate_when(notin, {"tasks.count.results.rows": "0"}) is not None
    assert evaluate_when(notin, {"tasks.count.results.rows": "12"}) is None


def test_results_are_parsed_from_name_value_lines() -> None:
    assert parse_results("rows=42\nnoise line\npath=/workspace/x.csv\n") == {
        "rows": "42",
        "path": "/workspace/x.csv",
    }
    task = TaskSpec.model_validate({"name": "t", "image": "busybox:1.36", "results": [{"name": "rows"}]})
    assert declared_results(task, "rows=42\nother=1") == ({"rows": "42"}, None)


def test_result_size_limits_give_a_clear_error() -> None:
    task = TaskSpec.model_validate({"name": "t", "image": "busybox:1.36", "results": [{"name": "blob"}]})
    values, error = declared_results(task, "blob=" + "x" * 2000)
    assert values == {}
    assert error is not None and '"blob" is 2000 bytes' in error and "workspace" in error
    _, error = declared_results(task, "blob=1\n" + "y" * 5000)
    assert error is not None and "4096" in error


def test_result_references_must_come_from_an_upstream_task_that_declares_them() -> None:
    ok = pipeline(
        [
            {"name": "count", "results": [{"name": "rows"}]},
            {"name": "load", "dependsOn": ["count"], "args": ["$(tasks.count.results.rows)"]},
        ],
        final=[{"name": "report", "args": ["$(tasks.status)", "$(tasks.load.status)"]}],
    )
    check_references(ok, build_graph(ok))
    not_upstream = pipeline(
        [
            {"name": "count", "results": [{"name": "rows"}]},
            {"name": "load", "args": ["$(tasks.count.results.rows)"]},
        ]
    )
    with pytest.raises(InvalidPipeline) as error:
        check_references(not_upstream, build_graph(not_upstream))
    assert 'must depend on "count"' in error.value.message
    undeclared = pipeline(
        [
            {"name": "count"},
            {
                "name": "load",
                "dependsOn": ["count"],
                "when": [{"input": "$(tasks.count.results.rows)", "operator": "notin", "values": ["0"]}],
            },
        ]
    )
    with pytest.raises(InvalidPipeline) as error:
        check_references(undeclared, build_graph(undeclared))
    assert 'declares no result "rows"' in error.value.message
    assert "when[0].input" in error.value.message
