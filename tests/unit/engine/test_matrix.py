"""Fan-out expansion and its validation, and script tasks: no cluster."""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

from sluice.api.v1alpha1 import Matrix, PipelineSpec
from sluice.engine.dag import build_graph
from sluice.engine.errors import InvalidPipeline
from sluice.engine.matrix import expand, gathered, split_key, unit_key
from sluice.engine.params import check_references
from sluice.engine.render import RunIdentity, render_pod
from sluice.engine.script import check_script
from tests.builders import spec_of


def matrix(**body: object) -> Matrix:
    return Matrix.model_validate(body)


def test_axes_give_their_cross_product_last_axis_fastest_then_the_included_combinations() -> None:
    fanout = expand(
        matrix(
            axes=[{"name": "region", "values": ["eu", "us"]}, {"name": "day", "values": [1, 2]}],
            include=[{"region": "ap", "day": 9}],
        ),
        {},
    )
    assert [dict(i) for i in fanout.instances] == [
        {"region": "eu", "day": "1"},
        {"region": "eu", "day": "2"},
        {"region": "us", "day": "1"},
        {"region": "us", "day": "2"},
        {"region": "ap", "day": "9"},
    ]
    assert fanout.variables(4) == {"matrix.region": "ap", "matrix.day": "9"}
    assert fanout.label(1) == "region=eu, day=2"


def test_an_axis_reads_a_json_array_from_a_param_or_a_result() -> None:
    spec = matrix(axes=[{"name": "f", "from": "$(tasks.list.results.files)"}])
    fanout = expand(spec, {"tasks.list.results.files": '["a.csv", 7, true, 1.5]'})
    assert [i["f"] for i in fanout.instances] == ["a.csv", "7", "true", "1.5"]
    from_param = expand(matrix(axes=[{"name": "r", "from": "$(params.regions)"}]), {"params.regions": "[]"})
    assert from_param.instances == () and not from_param.failed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("eu,us", "not JSON"),
        ('{"eu": 1}', "JSON dict, not an array"),
        ('["eu", ["nested"]]', "item 1 is a list"),
        ('["eu", null]', "item 1 is a null"),
    ],
)
def test_a_value_that_is_not_an_array_of_scalars_fails_the_task_saying_why(text: str, why: str) -> None:
    fanout = expand(matrix(axes=[{"name": "r", "from": "$(params.regions)"}]), {"params.regions": text})
    assert fanout.reason == "InvalidMatrix"
    assert fanout.message is not None and why in fanout.message and "$(params.regions)" in fanout.message


def test_an_unwritten_result_and_too_many_instances_fail_the_task() -> None:
    missing = expand(matrix(axes=[{"name": "f", "from": "$(tasks.list.results.files)"}]), {})
    assert missing.reason == "MissingResult"
    big = expand(
        matrix(axes=[{"name": "a", "values": list(range(40))}, {"name": "b", "from": "$(params.b)"}]),
        {"params.b": json.dumps(list(range(26)))},
    )
    assert big.reason == "TooManyInstances" and "1040" in (big.message or "")
    assert (
        len(
            expand(
                matrix(
                    axes=[{"name": "a", "values": list(range(40))}, {"name": "b", "values": list(range(25))}]
                ),
                {},
            ).instances
        )
        == 1000
    )


def test_unit_keys_round_trip_and_a_plain_task_name_is_its_own_key() -> None:
    assert split_key(unit_key("load", 12)) == ("load", 12)
    assert split_key("load") == ("load", None)
    assert gathered(["3", None, "5"]) == '["3",null,"5"]'


def validate(tasks: list[dict[str, object]], **spec: object) -> None:
    pipeline = spec_of(tasks, **spec)
    check_references(pipeline, build_graph(pipeline))


@pytest.mark.parametrize(
    ("tasks", "fragment"),
    [
        (
            [
                {
                    "name": "t",
                    "args": ["$(matrix.regon)"],
                    "matrix": {"axes": [{"name": "region", "values": ["a"]}]},
                }
            ],
            "its matrix gives: $(matrix.region)",
        ),
        ([{"name": "t", "args": ["$(matrix.region)"]}], "has no matrix"),
        (
            [
                {
                    "name": "t",
                    "when": [{"input": "$(matrix.r)", "operator": "in", "values": ["a"]}],
                    "matrix": {"axes": [{"name": "r", "values": ["a"]}]},
                }
            ],
            "known per instance",
        ),
        (
            [{"name": "t", "matrix": {"axes": [{"name": "r", "values": ["a"]}], "include": [{"x": "b"}]}}],
            "matrix.include[0]",
        ),
        (
            [
                {"name": "list", "results": [{"name": "files"}]},
                {"name": "t", "matrix": {"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}]}},
            ],
            'must depend on "list"',
        ),
        (
            [
                {
                    "name": "t",
                    "matrix": {
                        "axes": [
                            {"name": "a", "values": list(range(100))},
                            {"name": "b", "values": list(range(11))},
                        ]
                    },
                }
            ],
            "would fan out to 1100 instances",
        ),
    ],
)
def test_a_matrix_no_run_could_expand_is_refused_with_the_reason(
    tasks: list[dict[str, object]], fragment: str
) -> None:
    with pytest.raises(InvalidPipeline) as refused:
        validate(tasks)
    assert fragment in refused.value.message


def test_a_matrix_reading_an_upstream_result_with_its_values_in_args_is_valid() -> None:
    validate(
        [
            {"name": "list", "results": [{"name": "files"}]},
            {
                "name": "load",
                "dependsOn": ["list"],
                "args": ["--file=$(matrix.f)", "--day=$(params.day)"],
                "matrix": {"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}], "parallelism": 2},
            },
        ],
        params=[{"name": "day"}],
    )


def test_a_script_beside_a_command_is_refused_by_the_operator_too() -> None:
    # The CRD refuses it at apply time; a Pipeline stored before that rule
    # must not have its command silently ignored either.
    spec = spec_of([{"name": "t", "script": "echo hi", "command": ["sh"]}])
    with pytest.raises(InvalidPipeline) as refused:
        check_references(spec, build_graph(spec))
    assert "both script and command" in refused.value.message


def test_a_shell_scripts_own_command_substitutions_are_not_references() -> None:
    validate([{"name": "t", "script": 'echo "$(date) in $(pwd)" $(params.day)'}], params=[{"name": "day"}])
    with pytest.raises(InvalidPipeline) as refused:
        validate([{"name": "t", "script": "echo $(params.dya)"}], params=[{"name": "day"}])
    assert "$(params.dya)" in refused.value.message


def test_labels_under_sluice_dev_are_refused_on_tasks_and_defaults() -> None:
    with pytest.raises(InvalidPipeline) as refused:
        validate([{"name": "t", "metadata": {"labels": {"sluice.dev/instance": "0"}}}])
    assert refused.value.reason == "InvalidLabels"
    with pytest.raises(InvalidPipeline):
        validate([{"name": "t"}], defaults={"metadata": {"labels": {"sluice.dev/task": "x"}}})
    validate([{"name": "t", "metadata": {"labels": {"sim.sluice.dev/fail": "true", "team": "data"}}}])


RUN = RunIdentity("etl", "run-1", "uid-1", "sales")


def render(
    task: dict[str, object], variables: dict[str, str], instance: int | None = None
) -> dict[str, object]:
    spec = spec_of([task])
    pod = render_pod(RUN, spec, spec.tasks[0], variables, 0, None, instance)
    return pod


def container(pod: dict[str, object]) -> dict[str, object]:
    return pod["spec"]["containers"][0]  # type: ignore[index, no-any-return]


def test_a_shell_script_gets_references_as_environment_variables_never_as_code() -> None:
    hostile = '"; rm -rf / #$(whoami)'
    pod = render(
        {"name": "t", "script": 'echo "$(params.day)" $$ $(date)\ncat "$(params.day)"', "args": ["x"]},
        {"params.day": hostile},
    )
    c = container(pod)
    assert c["command"] == [
        "/bin/sh",
        "-c",
        'echo "$${SLUICE_PARAMS_DAY}" $$$$ $$(date)\ncat "$${SLUICE_PARAMS_DAY}"',
        "sluice-script",
    ]
    assert c["args"] == ["x"]
    # The value is data in the environment, its $ doubled for the kubelet.
    assert {"name": "SLUICE_PARAMS_DAY", "value": hostile.replace("$", "$$")} in c["env"]  # type: ignore[operator]
    assert "volumes" not in pod["spec"]  # type: ignore[operator]


def test_a_script_with_an_interpreter_line_is_written_to_a_file_and_executed() -> None:
    script = "#!/usr/bin/env python3\nimport os\nprint(os.environ['DAY'])\n"
    pod = render(
        {"name": "t", "script": script, "env": [{"name": "DAY", "value": "$(params.day)"}]},
        {"params.day": "d"},
    )
    c = container(pod)
    assert c["command"][:2] == ["/bin/sh", "-c"]  # type: ignore[index]
    assert "exec /sluice/script/run" in c["command"][2]  # type: ignore[index]
    env = {e["name"]: e["value"] for e in c["env"]}  # type: ignore[attr-defined]
    assert env["SLUICE_SCRIPT"] == script and env["DAY"] == "d"
    assert {"name": "sluice-script", "mountPath": "/sluice/script"} in c["volumeMounts"]  # type: ignore[operator]


def test_a_reference_in_a_non_shell_script_is_refused_with_how_to_pass_the_value() -> None:
    spec = spec_of(
        [{"name": "t", "script": "#!/usr/bin/python3\nprint('$(params.day)')\n"}], params=[{"name": "day"}]
    )
    with pytest.raises(InvalidPipeline) as refused:
        check_script(spec.tasks[0])
    assert "python3" in refused.value.message and "env entry" in refused.value.message
    with pytest.raises(InvalidPipeline):
        check_references(spec, build_graph(spec))


def test_an_instance_pod_has_its_own_name_label_and_matrix_values() -> None:
    task = {
        "name": "load",
        "args": ["--region=$(matrix.region)"],
        "matrix": {"axes": [{"name": "region", "values": ["eu"]}]},
    }
    pod = render(task, {"matrix.region": "eu"}, instance=3)
    meta = pod["metadata"]
    assert meta["labels"]["sluice.dev/instance"] == "3"  # type: ignore[index]
    assert meta["labels"]["sluice.dev/task"] == "load"  # type: ignore[index]
    assert meta["name"].startswith("run-1-load-3-")  # type: ignore[index]
    plain = render({"name": "load-3"}, {})
    assert plain["metadata"]["name"] != meta["name"]  # type: ignore[index]
    assert container(pod)["args"] == ["--region=eu"]


def test_pipeline_specs_with_a_matrix_and_a_script_round_trip_through_the_api_form() -> None:
    body = {
        "tasks": [
            {
                "name": "t",
                "image": "busybox:1.36",
                "script": "echo",
                "matrix": {"axes": [{"name": "a", "from": "$(params.a)"}]},
            }
        ],
        "params": [{"name": "a"}],
    }
    assert PipelineSpec.model_validate(body).to_api()["tasks"][0]["matrix"] == {
        "axes": [{"name": "a", "from": "$(params.a)"}]
    }


def test_a_scripts_reference_never_replaces_a_variable_the_task_sets_itself() -> None:
    pod = render(
        {
            "name": "t",
            "script": "echo $(params.day)",
            "env": [{"name": "SLUICE_PARAMS_DAY", "value": "mine"}],
        },
        {"params.day": "d"},
    )
    env = container(pod)["env"]
    assert {"name": "SLUICE_PARAMS_DAY", "value": "mine"} in env  # type: ignore[operator]
    assert {"name": "SLUICE_PARAMS_DAY_2", "value": "d"} in env  # type: ignore[operator]
    assert "$${SLUICE_PARAMS_DAY_2}" in container(pod)["command"][2]  # type: ignore[index]


def as_the_kubelet_passes_it(text: str) -> str:
    """The kubelet's expansion of an escaped value: `$$` becomes `$` (no
    `$(VAR)` is left to expand: every `$` Sluice writes is doubled).
    """
    assert "$(" not in text.replace("$$", "")
    return text.replace("$$", "$")


HOSTILE = [
    '"; touch /tmp/sluice-pwned; echo "',
    "$(touch /tmp/sluice-pwned)",
    "`touch /tmp/sluice-pwned`",
    "${HOME:?boom} $((1+1)) \\ \n'quoted'",
    "line one\nline two; touch /tmp/sluice-pwned",
]


@pytest.mark.parametrize("shell", ["", "/bin/sh", "/bin/bash"])
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_reaches_a_real_shell_as_data(shell: str, value: str, tmp_path: pathlib.Path) -> None:
    script = (f"#!{shell}\n" if shell else "") + 'printf "%s|" "$(params.v)"\nprintf "%s" "$(matrix.m)"\n'
    task = {"name": "t", "script": script, "matrix": {"axes": [{"name": "m", "values": ["x"]}]}}
    pod = render(task, {"params.v": value, "matrix.m": value}, instance=0)
    c = container(pod)
    env = {e["name"]: as_the_kubelet_passes_it(e["value"]) for e in c["env"]}  # type: ignore[attr-defined]
    launcher = as_the_kubelet_passes_it(c["command"][2]).replace("/sluice/script", str(tmp_path))  # type: ignore[index]
    command = [*c["command"][:2], launcher, *c["command"][3:]]  # type: ignore[index]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{value}|{value}"
    assert not pathlib.Path("/tmp/sluice-pwned").exists()
