from sluice.engine.observe import CreatedJob, RefusedCreate, observe_task, observe_tasks
from tests.builders import T0, attempt_job, job, pod


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


def test_each_task_is_read_from_its_newest_attempt_and_only_that_attempts_pods() -> None:
    failed = [{"type": "Failed", "status": "True", "lastTransitionTime": T0}]
    jobs = [
        attempt_job("load-0", "load", 0, failed),
        attempt_job("load-1", "load", 1, active=1),
        attempt_job("other", "not-a-task-of-this-run", 0, active=1),
    ]
    pods = {"load-0": {"p0": pod("p0", T0, {"exitCode": 1})}, "load-1": {"p1": pod("p1", T0)}}
    observed = observe_tasks({"load", "report"}, jobs, pods)
    assert set(observed) == {"load"}
    assert observed["load"].job_name == "load-1"
    assert observed["load"].attempt == 1
    assert observed["load"].phase == "Running"
    assert observed["load"].pod_name == "p1"


def test_a_job_created_but_not_yet_seen_counts_as_running_and_a_refused_one_as_failed() -> None:
    failed = [{"type": "Failed", "status": "True", "lastTransitionTime": T0}]
    jobs = [attempt_job("load-0", "load", 0, failed), attempt_job("copy-0", "copy", 0, failed)]
    observed = observe_tasks(
        {"load", "copy", "fresh"},
        jobs,
        {},
        created=[CreatedJob("load-1", "load", 1), CreatedJob("fresh-0", "fresh", 0)],
        refused=[RefusedCreate("copy-1", "spec.tolerations: Invalid value", T0, "copy", 1)],
    )
    assert (observed["load"].job_name, observed["load"].phase, observed["load"].attempt) == (
        "load-1",
        "Running",
        1,
    )
    assert observed["fresh"].phase == "Running"
    refused = observed["copy"]
    assert (refused.phase, refused.reason, refused.attempt) == ("Failed", "JobRejected", 1)
    assert refused.message is not None and "spec.tolerations: Invalid value" in refused.message


def test_a_created_job_the_watch_already_shows_is_read_from_the_watch() -> None:
    done = [{"type": "Complete", "status": "True", "lastTransitionTime": T0}]
    observed = observe_tasks(
        {"load"}, [attempt_job("load-0", "load", 0, done)], {}, [CreatedJob("load-0", "load", 0)]
    )
    assert observed["load"].phase == "Succeeded"
