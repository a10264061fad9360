import pytest

from sluice.api.v1alpha1 import ParamValue, PipelineSpec
from sluice.engine.dag import build_graph
from sluice.engine.errors import InvalidPipeline
from sluice.engine.params import bind_params, check_references, substitute
from tests.builders import spec_of as pipeline

SPEC = PipelineSpec.model_validate(
    {
        "params": [{"name": "day", "default": "2026-01-01"}, {"name": "table"}],
        "tasks": [
            {
                "name": "load",
                "image": "busybox:1.36",
                "args": ["--day=$(params.day)", "--table=$(params.table)", "$(context.pipelineRun.name)"],
                "env": [{"name": "TABLE", "value": "$(params.table)"}],
            }
        ],
    }
)


def test_defaults_fill_in_and_given_values_win() -> None:
    bound = bind_params(SPEC, [ParamValue(name="table", value="sales")])
    assert bound == {"day": "2026-01-01", "table": "sales"}
    bound = bind_params(SPEC, [ParamValue(name="table", value="t"), ParamValue(name="day", value="d")])
    assert bound == {"day": "d", "table": "t"}


def test_missing_required_param_is_named() -> None:
    with pytest.raises(InvalidPipeline) as error:
        bind_params(SPEC, [])
    assert error.value.reason == "MissingParams"
    assert "table" in error.value.message


def test_unknown_param_is_named() -> None:
    with pytest.raises(InvalidPipeline) as error:
        bind_params(SPEC, [ParamValue(name="table", value="x"), ParamValue(name="colour", value="red")])
    assert error.value.reason == "InvalidParams"
    assert "colour" in error.value.message


def test_reference_to_undeclared_param_is_rejected() -> None:
    bad = SPEC.model_copy(deep=True)
    bad.tasks[0].args = ["$(params.dat)"]
    with pytest.raises(InvalidPipeline) as error:
        check_references(bad, build_graph(bad))
    assert "$(params.dat)" in error.value.message
    assert '"load"' in error.value.message


def test_declared_references_pass() -> None:
    check_references(SPEC, build_graph(SPEC))


def test_substitute_replaces_known_and_leaves_other_text() -> None:
    variables = {"params.day": "2026-02-03", "context.pipelineRun.name": "r1"}
    assert (
        substitute("d=$(params.day) r=$(context.pipelineRun.name) $HOME", variables)
        == "d=2026-02-03 r=r1 $HOME"
    )


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
