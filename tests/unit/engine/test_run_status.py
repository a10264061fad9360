import json

from sluice.api.v1alpha1 import PipelineRunStatus, PipelineSpec
from sluice.engine.dag import build_graph
from sluice.engine.observe import TaskObservation
from sluice.engine.run_status import compute_status, format_duration
from tests.builders import T0, spec_of

SPEC = spec_of([{"name": "a"}, {"name": "b", "dependsOn": ["a"]}, {"name": "x"}])


def snapshot() -> PipelineRunStatus:
    return PipelineRunStatus(pipeline_spec=SPEC, start_time=T0)


def test_status_while_running_and_condition_time_is_stable() -> None:
    graph = build_graph(SPEC)
    observed = {"a": TaskObservation("ja", "Running")}
    first = compute_status(snapshot(), graph, observed, T0)
    assert first.phase == "Running"
    assert first.progress == "0/3"
    again = compute_status(first, graph, observed, "2026-11-24T11:00:00Z")
    assert again.to_api() == first.to_api()


def test_failed_task_skips_dependent_and_run_fails_after_independent_branch() -> None:
    graph = build_graph(SPEC)
    failed = TaskObservation("ja-1", "Failed", T0, "2026-11-24T10:00:10Z", 2, "Error", "exit code 2: boom")
    running = compute_status(snapshot(), graph, {"a": failed, "x": TaskObservation("jx", "Running")}, T0)
    assert running.phase == "Running"
    tasks = {t.name: t for t in running.tasks or ()}
    assert tasks["b"].phase == "Skipped"
    assert tasks["b"].message is not None and '"a" failed' in tasks["b"].message
    done = TaskObservation("jx", "Succeeded", completion_time="2026-11-24T10:01:40Z")
    final = compute_status(running, graph, {"a": failed, "x": done}, "2026-11-24T10:02:00Z")
    assert final.phase == "Failed"
    condition = next(c for c in final.conditions or () if c.type == "Succeeded")
    assert condition.status == "False"
    assert condition.reason == "TaskFailed"
    assert '"a"' in condition.message and "boom" in condition.message
    assert final.completion_time == "2026-11-24T10:01:40Z"
    assert final.duration == "1m40s"
    assert final.progress == "1/3"


def test_recorded_terminal_task_survives_its_job_being_deleted() -> None:
    graph = build_graph(SPEC)
    first = compute_status(
        snapshot(), graph, {"a": TaskObservation("ja", "Succeeded", completion_time=T0)}, T0
    )
    later = compute_status(first, graph, {}, T0)
    assert {t.name: t.phase for t in later.tasks or ()}["a"] == "Succeeded"


def test_format_duration() -> None:
    assert format_duration(T0, "2026-11-24T10:00:42Z") == "42s"
    assert format_duration(T0, "2026-11-24T12:05:00Z") == "2h5m"


# A run's status must stay far below etcd's 1.5 MiB object limit even for a
# 500-task pipeline (peers' runs got stuck once status outgrew it).


def big_spec(tasks: int) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "tasks": [
                {
                    "name": f"task-number-{i:04d}-with-a-realistically-long-name"[:63],
                    "image": "registry.example.com/team/etl-image:2026.11.24",
                    "args": ["--input=/workspace/in", f"--part={i}", "--day=$(params.day)"],
                    "dependsOn": [f"task-number-{i - 1:04d}-with-a-realistically-long-name"[:63]]
                    if i
                    else None,
                }
                for i in range(tasks)
            ],
            "params": [{"name": "day", "default": "2026-01-01"}],
        }
    )


def test_a_500_task_run_with_every_task_failed_verbosely_fits_in_etcd() -> None:
    spec = big_spec(500)
    graph = build_graph(spec)
    observed = {
        name: TaskObservation(
            pod_name=f"run-{name}"[:63],
            phase="Failed",
            start_time=T0,
            completion_time=T0,
            exit_code=1,
            reason="Error",
            message="x" * 5000,
        )
        for name in graph.order
    }
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    size = len(json.dumps(status.to_api()))
    assert size < 1_000_000, f"{size} bytes"
    assert all(len(t.message or "") <= 1024 for t in status.tasks or ())
    condition = {c.type: c for c in status.conditions or []}
    assert "and 490 more" in condition["Succeeded"].message
    # the health conditions say the same, shortened: the status must fit
    assert condition["Stalled"].reason == condition["Ready"].reason == "TaskFailed"
    assert len(condition["Stalled"].message) == len(condition["Ready"].message) == 512


def test_a_typical_500_task_run_status_is_small() -> None:
    spec = big_spec(500)
    graph = build_graph(spec)
    observed = {name: TaskObservation(f"run-{name}"[:63], "Succeeded", T0, T0) for name in graph.order}
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    assert len(json.dumps(status.to_api())) < 400_000


def test_a_5000_task_run_with_every_task_failed_verbosely_still_fits_in_etcd() -> None:
    spec = PipelineSpec.model_validate({"tasks": [{"name": f"t{i}", "image": "etl:1"} for i in range(5000)]})
    graph = build_graph(spec)
    observed = {
        name: TaskObservation(f"run-{name}", "Failed", T0, T0, 1, "Error", "x" * 900 + "THE CAUSE")
        for name in graph.order
    }
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    size = len(json.dumps(status.to_api(), separators=(",", ":")))  # as the API server stores it
    assert size < 1_450_000, f"{size} bytes"
    messages = [t.message or "" for t in status.tasks or ()]
    assert all(m.endswith("THE CAUSE") and 9 < len(m) < 1024 for m in messages)
    # Read back and computed again, the shortened messages do not change.
    again = compute_status(status, graph, {}, T0)
    assert [t.message for t in again.tasks or ()] == messages


def test_non_ascii_log_tails_are_bounded_in_bytes_not_characters() -> None:
    # etcd counts bytes: 5,000 failed tasks whose logs end in 3- and 4-byte
    # characters must fit as well as ASCII ones do, and no character is cut.
    spec = PipelineSpec.model_validate({"tasks": [{"name": f"t{i}", "image": "etl:1"} for i in range(5000)]})
    graph = build_graph(spec)
    tail = "数据加载失败🚫" * 150 + "原因"
    observed = {
        name: TaskObservation(f"run-{name}", "Failed", T0, T0, 1, "Error", tail) for name in graph.order
    }
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    stored = json.dumps(status.to_api(), separators=(",", ":"), ensure_ascii=False).encode()
    assert len(stored) < 1_450_000, f"{len(stored)} bytes"
    messages = [t.message or "" for t in status.tasks or ()]
    assert all(m.endswith("原因") and len(m.encode()) <= 1024 for m in messages)
    assert all("\ufffd" not in m for m in messages)


def test_the_runs_message_budget_counts_bytes() -> None:
    # 190 messages of 1,000 four-byte characters: 190,000 characters (under
    # the budget if it counted characters) but 760 KB of what etcd stores.
    from sluice.engine.run_status import MESSAGE_BUDGET

    spec = PipelineSpec.model_validate({"tasks": [{"name": f"t{i}", "image": "etl:1"} for i in range(190)]})
    graph = build_graph(spec)
    observed = {
        name: TaskObservation(f"run-{name}", "Failed", T0, T0, 1, "Error", "🚫" * 1000)
        for name in graph.order
    }
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    assert sum(len((t.message or "").encode()) for t in status.tasks or ()) <= MESSAGE_BUDGET


def test_a_task_under_a_wide_fan_in_gets_a_short_skip_message() -> None:
    # A root failing under a 1,000-way fan-out skips them all and then the
    # join: its message names a few, not all 1,000 (the API caps 4,096).
    tasks = [{"name": "root", "image": "etl:1"}]
    tasks += [
        {"name": f"part-{i:04d}-of-the-daily-load", "image": "etl:1", "dependsOn": ["root"]}
        for i in range(1000)
    ]
    tasks += [{"name": "join", "image": "etl:1", "dependsOn": [t["name"] for t in tasks[1:]]}]
    spec = PipelineSpec.model_validate({"tasks": tasks})
    graph = build_graph(spec)
    observed = {"root": TaskObservation("run-root", "Failed", T0, T0, 1, "Error", "boom")}
    status = compute_status(PipelineRunStatus(pipeline_spec=spec, start_time=T0), graph, observed, T0)
    join = next(t for t in status.tasks or () if t.name == "join")
    assert join.phase == "Skipped" and join.message is not None
    assert join.message.endswith("and 995 more") and len(join.message.encode()) < 1024
    PipelineRunStatus.model_validate(status.to_api())  # what the API server would check
