import pytest

from sluice.engine.dag import (
    Graph,
    build_graph,
    find_cycle,
    ready_tasks,
    resolve_task_phases,
    run_phase,
    topological_order,
    trigger_verdict,
)
from sluice.engine.errors import InvalidPipeline
from tests.builders import dag_of as spec
from tests.builders import spec_of as pipeline

DIAMOND = spec(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]))


def test_diamond_starts_with_root_only() -> None:
    graph = build_graph(DIAMOND)
    phases = resolve_task_phases(graph, {})
    assert ready_tasks(graph, phases) == ["a"]


def test_both_branches_start_after_root_succeeds_and_join_waits_for_both() -> None:
    graph = build_graph(DIAMOND)
    phases = resolve_task_phases(graph, {"a": "Succeeded"})
    assert ready_tasks(graph, phases) == ["b", "c"]
    phases = resolve_task_phases(graph, {"a": "Succeeded", "b": "Succeeded", "c": "Running"})
    assert ready_tasks(graph, phases) == []
    phases = resolve_task_phases(graph, {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded"})
    assert ready_tasks(graph, phases) == ["d"]


def test_running_tasks_are_not_started_again() -> None:
    graph = build_graph(DIAMOND)
    phases = resolve_task_phases(graph, {"a": "Succeeded", "b": "Running"})
    assert ready_tasks(graph, phases) == ["c"]


def test_failure_skips_dependents_transitively_but_not_independent_branches() -> None:
    pipeline = spec(("a", []), ("b", ["a"]), ("c", ["b"]), ("x", []), ("y", ["x"]))
    graph = build_graph(pipeline)
    phases = resolve_task_phases(graph, {"a": "Failed", "x": "Succeeded"})
    assert phases["b"] == "Skipped"
    assert phases["c"] == "Skipped"
    assert ready_tasks(graph, phases) == ["y"]
    assert run_phase(phases) == "Running"


def test_run_phase() -> None:
    assert run_phase({"a": "Pending", "b": "Pending"}) == "Pending"
    assert run_phase({"a": "Running", "b": "Pending"}) == "Running"
    assert run_phase({"a": "Succeeded", "b": "Succeeded"}) == "Succeeded"
    assert run_phase({"a": "Failed", "b": "Skipped"}) == "Failed"
    assert run_phase({"a": "Failed", "b": "Running"}) == "Running"


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(InvalidPipeline) as error:
        build_graph(spec(("a", []), ("b", ["nope"])))
    assert error.value.reason == "UnknownDependency"
    assert '"b" depends on "nope"' in error.value.message


def test_cycle_is_reported_with_its_path() -> None:
    with pytest.raises(InvalidPipeline) as error:
        build_graph(spec(("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", [])))
    assert error.value.reason == "CycleDetected"
    assert "a -> c -> b -> a" in error.value.message


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(InvalidPipeline) as error:
        build_graph(spec(("a", ["a"])))
    assert error.value.reason == "CycleDetected"


def test_duplicate_names_rejected() -> None:
    with pytest.raises(InvalidPipeline) as error:
        build_graph(spec(("a", []), ("a", [])))
    assert error.value.reason == "DuplicateTaskName"


def test_long_chain_has_no_recursion_limit() -> None:
    names = [f"t{i}" for i in range(3000)]
    graph = Graph.from_edges(names, {n: [names[i - 1]] if i else [] for i, n in enumerate(names)})
    assert find_cycle(graph) is None
    assert topological_order(graph) == names


def test_topological_order_respects_dependencies_declared_out_of_order() -> None:
    graph = build_graph(spec(("d", ["b", "c"]), ("c", ["a"]), ("b", ["a"]), ("a", [])))
    order = topological_order(graph)
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")


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
