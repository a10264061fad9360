from typing import Any

from sluice.api.v1alpha1 import PipelineRunStatus, PipelineSpec
from sluice.dag import build_graph
from sluice.observe import TaskObservation, observe_task
from sluice.progress import compute_status, format_duration

T0 = "2026-11-24T10:00:00Z"


def job(name: str, conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"conditions": conditions or [], **status}}


def pod(name: str, created: str, terminated: dict[str, Any] | None = None) -> dict[str, Any]:
    state = {"terminated": terminated} if terminated else {"running": {}}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": [{"name": "task", "state": state}]},
    }


def test_complete_job_is_succeeded() -> None:
    obs = observe_task(
        job(
            "j", [{"type": "Complete", "status": "True"}], startTime=T0, completionTime="2026-11-24T10:00:05Z"
        ),
        [pod("j-1", T0, {"exitCode": 0})],
    )
    assert obs.phase == "Succeeded"
    assert obs.pod_name == "j-1"
    assert obs.completion_time == "2026-11-24T10:00:05Z"


def test_failed_job_reports_latest_pod_exit_code_and_message() -> None:
    obs = observe_task(
        job(
            "j",
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "lastTransitionTime": "2026-11-24T10:01:00Z",
                }
            ],
        ),
        [
            pod("j-old", T0, {"exitCode": 1, "message": "old"}),
            pod(
                "j-new",
                "2026-11-24T10:00:30Z",
                {"exitCode": 3, "reason": "Error", "message": "no such table\n"},
            ),
        ],
    )
    assert obs.phase == "Failed"
    assert obs.pod_name == "j-new"
    assert obs.exit_code == 3
    assert obs.reason == "Error"
    assert obs.message == "exit code 3: no such table"


def test_succeeded_pod_decides_the_task_before_the_job_controller_catches_up() -> None:
    done = pod("j-1", T0, {"exitCode": 0, "finishedAt": "2026-11-24T10:00:02Z"})
    done["status"]["phase"] = "Succeeded"
    obs = observe_task(job("j", active=1, startTime=T0), [done])
    assert obs.phase == "Succeeded"
    assert obs.completion_time == "2026-11-24T10:00:02Z"


def test_failed_pod_alone_does_not_fail_the_task() -> None:
    failed = pod("j-1", T0, {"exitCode": 1})
    failed["status"]["phase"] = "Failed"
    assert observe_task(job("j", active=1), [failed]).phase == "Running"


def test_active_job_is_running() -> None:
    assert observe_task(job("j", active=1), []).phase == "Running"


def test_long_messages_keep_their_tail() -> None:
    obs = observe_task(
        job("j", [{"type": "Failed", "status": "True"}]),
        [pod("p", T0, {"exitCode": 1, "message": "x" * 5000 + "THE END"})],
    )
    assert obs.message is not None
    assert len(obs.message) <= 1024
    assert obs.message.endswith("THE END")


SPEC = PipelineSpec.model_validate(
    {
        "tasks": [
            {"name": "a", "image": "busybox:1.36"},
            {"name": "b", "image": "busybox:1.36", "dependsOn": ["a"]},
            {"name": "x", "image": "busybox:1.36"},
        ]
    }
)


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
    failed = TaskObservation(
        "ja", "Failed", "ja-1", T0, "2026-11-24T10:00:10Z", 2, "Error", "exit code 2: boom"
    )
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
