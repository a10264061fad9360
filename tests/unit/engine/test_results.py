from sluice.api.v1alpha1 import TaskSpec
from sluice.engine.results import declared_results, parse_results


def test_results_are_parsed_from_name_value_lines() -> None:
    assert parse_results("rows=42\nnoise line\npath=/workspace/x.csv\n") == {
        "rows": "42",
        "path": "/workspace/x.csv",
    }
    task = TaskSpec.model_validate({"name": "t", "image": "busybox:1.36", "results": [{"name": "rows"}]})
    assert declared_results(task, "rows=42\nother=1") == ({"rows": "42"}, None)


def test_result_size_limits_give_a_clear_error() -> None:
    task = TaskSpec.model_validate({"name": "t", "image": "busybox:1.36", "results": [{"name": "blob"}]})
    values, error = declared_results(task, "blob=" + "x" * 4050)
    assert values == {}
    assert error is not None and '"blob" is 4050 bytes' in error and "workspace" in error
    _, error = declared_results(task, "blob=1\n" + "y" * 5000)
    assert error is not None and "4096" in error
