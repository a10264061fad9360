"""The run's plan: every decision of a reconcile pass, without a cluster."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sluice.api.v1alpha1 import DataInterval, PipelineRunSpec, PipelineRunStatus, PipelineSpec, ScheduleSpec
from sluice.engine.admission import PeerRun
from sluice.engine.observe import TaskObservation, TrackedPod
from sluice.engine.run_plan import RunFacts, RunPlan, admission_scope, plan_gone, plan_run
from sluice.engine.run_source import Fetched
from tests.builders import T0, snapshot, spec_of

CREATED = "2026-11-24T09:59:58Z"
LATER = "2026-11-24T10:00:30Z"


def facts(
    status: PipelineRunStatus | None = None,
    spec: dict[str, Any] | None = None,
    now: str = T0,
    pipeline_grace_seconds: float = 10,
    **extra: Any,
) -> RunFacts:
    return RunFacts(
        namespace="etl",
        name="run-1",
        uid="uid-1",
        created=CREATED,
        now=now,
        status=status or PipelineRunStatus(),
        spec=PipelineRunSpec.model_validate(spec if spec is not None else {"pipelineRef": {"name": "sales"}}),
        pipeline_grace_seconds=pipeline_grace_seconds,
        **extra,
    )


def pipeline_body(spec: PipelineSpec) -> dict[str, Any]:
    return {"metadata": {"name": "sales"}, "spec": spec.to_api()}


def started(spec: PipelineSpec, **status: Any) -> PipelineRunStatus:
    """A run whose snapshot is recorded, as the first pass wrote it."""
    return snapshot(spec, pipeline_name="sales", **status)


def ran(name: str, phase: str, attempt: int = 0, **extra: Any) -> TaskObservation:
    return TaskObservation(f"pod-{name}-{attempt}", phase, attempt=attempt, **extra)


def task_phases(plan: RunPlan) -> dict[str, str]:
    assert plan.status is not None
    return {t.name: t.phase for t in plan.status.tasks or ()}


def task_status(plan: RunPlan, name: str) -> Any:
    assert plan.status is not None
    return next(t for t in plan.status.tasks or () if t.name == name)


def started_tasks(plan: RunPlan) -> list[tuple[str, int]]:
    return [(s.task, s.attempt) for s in plan.starts]


def reasons(plan: RunPlan) -> list[str]:
    return [e.reason for e in plan.events]


def outcome(plan: RunPlan) -> tuple[str | None, str]:
    assert plan.status is not None
    condition = next(c for c in plan.status.conditions or () if c.type == "Succeeded")
    return plan.status.phase, condition.reason


CHAIN = spec_of([{"name": "extract"}, {"name": "load", "dependsOn": ["extract"]}])
LIMITED = spec_of([{"name": "a"}], maxConcurrentRuns=1)
WORKSPACE = spec_of(
    [{"name": "a"}],
    workspace={
        "volumeClaimTemplate": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        }
    },
)

# --- before the snapshot ------------------------------------------------------------


def test_a_run_is_admitted_by_recording_its_snapshot_and_starts_nothing_yet() -> None:
    spec = spec_of(
        [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}], params=[{"name": "day", "default": "x"}]
    )
    plan = plan_run(facts(source=Fetched("sales", pipeline_body(spec)), generation=3))
    assert plan.replan and plan.starts == ()
    assert plan.status is not None
    assert plan.status.pipeline_spec == spec
    assert plan.status.pipeline_name == "sales"
    assert [(p.name, p.value) for p in plan.status.params or ()] == [("day", "x")]
    assert plan.status.observed_generation == 3
    assert plan.status.start_time == T0
    assert task_phases(plan) == {"a": "Pending", "b": "Pending"}
    assert [(e.type, e.reason) for e in plan.events] == [("Normal", "Started")]
    assert plan.record_last_run == "sales"


def test_scheduled_and_inline_runs_are_not_recorded_as_the_pipelines_last_run() -> None:
    body = pipeline_body(CHAIN)
    scheduled = plan_run(facts(source=Fetched("sales", body), labels={"sluice.dev/scheduled-by": "sales"}))
    assert scheduled.replan and scheduled.record_last_run is None
    inline = plan_run(facts(spec={"pipelineSpec": CHAIN.to_api()}))
    assert inline.replan and inline.record_last_run is None
    assert inline.status is not None and inline.status.pipeline_name == "(inline)"


def test_a_missing_pipeline_is_waited_for_then_fails_the_run() -> None:
    waiting = plan_run(facts(source=Fetched("sales", None), pipeline_grace_seconds=10))
    assert outcome(waiting) == ("Pending", "PipelineNotFound")
    assert waiting.wait_for == ("pipeline", "sales")
    assert waiting.wake_after == pytest.approx(10 - 2 + 0.05)
    assert waiting.finished is None and waiting.events == ()
    failed = plan_run(facts(source=Fetched("sales", None), now=LATER, pipeline_grace_seconds=10))
    assert outcome(failed) == ("Failed", "PipelineNotFound")
    assert failed.finished == "Failed" and reasons(failed) == ["PipelineNotFound"]
    assert failed.status is not None and failed.status.completion_time == LATER


def test_an_unchanged_waiting_run_is_not_written_again() -> None:
    first = plan_run(facts(source=Fetched("sales", None)))
    assert first.status is not None
    again = plan_run(facts(first.status, source=Fetched("sales", None), now="2026-11-24T10:00:01Z"))
    assert again.status is None
    assert again.wait_for == ("pipeline", "sales")


@pytest.mark.parametrize(
    ("spec", "body", "reason", "words"),
    [
        ({"pipelineRef": {"name": "sales"}}, {"spec": {"tasks": []}}, "InvalidPipeline", "tasks"),
        (
            {"pipelineRef": {"name": "sales"}},
            {
                "spec": spec_of(
                    [{"name": "a", "dependsOn": ["b"]}, {"name": "b", "dependsOn": ["a"]}]
                ).to_api()
            },
            "CycleDetected",
            "a -> b -> a",
        ),
        (
            {"pipelineRef": {"name": "sales"}},
            {"spec": spec_of([{"name": "a"}], params=[{"name": "day"}]).to_api()},
            "MissingParams",
            "day",
        ),
        (
            {"pipelineRef": {"name": "sales"}, "params": [{"name": "typo", "value": "1"}]},
            {"spec": CHAIN.to_api()},
            "InvalidParams",
            "typo",
        ),
        ({}, None, "InvalidSpec", "pipelineRef"),
    ],
)
def test_a_run_that_cannot_start_fails_at_once_naming_the_problem(
    spec: dict[str, Any], body: dict[str, Any] | None, reason: str, words: str
) -> None:
    source = Fetched("sales", body) if body is not None else None
    plan = plan_run(facts(spec=spec, source=source))
    assert outcome(plan) == ("Failed", reason)
    assert plan.finished == "Failed" and plan.starts == () and not plan.replan
    assert reasons(plan) == [reason] and words in plan.events[0].message
    assert plan.events[0].type == "Warning"
    if body is not None:  # the pipeline it was refused for shows in `kubectl get`
        assert plan.status is not None and plan.status.pipeline_name == "sales"


def test_a_spec_the_models_refuse_fails_the_run_with_the_parse_error() -> None:
    plan = plan_run(replace(facts(), spec=None, spec_error="timeoutSeconds: must be >= 1"))
    assert outcome(plan) == ("Failed", "InvalidSpec")
    assert "timeoutSeconds" in plan.events[0].message


def test_a_rerun_reuses_the_succeeded_tasks_params_and_claim_of_a_finished_run() -> None:
    old = started(
        CHAIN,
        phase="Failed",
        completion_time=LATER,
        params=[{"name": "day", "value": "2026-11-23"}],
        workspace_claim_name="run-0-workspace-abc",
        tasks=[
            {"name": "extract", "phase": "Succeeded", "results": [{"name": "rows", "value": "7"}]},
            {"name": "load", "phase": "Failed", "reason": "Error"},
        ],
    )
    source = Fetched("run-0", {"metadata": {"name": "run-0"}, "status": old.to_api()})
    plan = plan_run(facts(spec={"rerunOf": {"name": "run-0"}}, source=source))
    assert plan.replan
    assert plan.status is not None
    assert plan.status.workspace_claim_name == "run-0-workspace-abc"
    assert [(p.name, p.value) for p in plan.status.params or ()] == [("day", "2026-11-23")]
    extract = task_status(plan, "extract")
    assert (extract.phase, extract.reason) == ("Succeeded", "Reused")
    assert extract.results[0].value == "7"
    assert task_status(plan, "load").phase == "Pending"
    assert "re-running run run-0" in plan.events[0].message


def test_a_rerun_loads_the_same_data_interval_and_scheduled_time_as_its_source() -> None:
    interval = {"start": "2026-10-23T02:00:00+02:00", "end": "2026-10-24T02:00:00+02:00"}
    scheduled = {
        "sluice.dev/scheduled-time": "2026-10-24T00:00:00Z",
        "sluice.dev/scheduled-date": "2026-10-24",
    }
    failed = started(CHAIN, phase="Failed", completion_time=LATER)
    # Frozen in the source's status (started by this version), or derived
    # from its annotations and spec (started before times were frozen).
    frozen = failed.model_copy(
        update={
            "scheduled_time": scheduled["sluice.dev/scheduled-time"],
            "scheduled_date": "2026-10-24",
            "data_interval": DataInterval.model_validate(interval),
        }
    )
    sources = [
        {"metadata": {"name": "run-0"}, "status": frozen.to_api()},
        {
            "metadata": {
                "name": "run-0",
                "annotations": scheduled,
                "creationTimestamp": "2026-10-24T00:00:02Z",
            },
            "spec": {"pipelineRef": {"name": "sales"}, "dataInterval": interval},
            "status": failed.to_api(),
        },
    ]
    for body in sources:
        plan = plan_run(facts(spec={"rerunOf": {"name": "run-0"}}, source=Fetched("run-0", body)))
        assert plan.status is not None
        assert plan.status.data_interval == DataInterval.model_validate(interval)
        assert (plan.status.scheduled_time, plan.status.scheduled_date) == (
            "2026-10-24T00:00:00Z",
            "2026-10-24",
        )


def test_a_rerun_of_a_missing_or_unfinished_run_fails_clearly() -> None:
    missing = plan_run(facts(spec={"rerunOf": {"name": "run-0"}}, source=Fetched("run-0", None)))
    assert outcome(missing) == ("Failed", "RerunSourceNotFound")
    running = {"metadata": {"name": "run-0"}, "status": started(CHAIN, phase="Running").to_api()}
    unfinished = plan_run(facts(spec={"rerunOf": {"name": "run-0"}}, source=Fetched("run-0", running)))
    assert outcome(unfinished) == ("Failed", "RerunSourceNotFinished")


# --- maxConcurrentRuns ------------------------------------------------------------------


def peer(name: str, created: str, started: bool, finished: bool = False, pipeline: str = "sales") -> PeerRun:
    return PeerRun(name, created, pipeline, finished, started)


def test_admission_is_needed_only_for_a_limited_pipeline_run_that_has_not_started() -> None:
    limited = facts(source=Fetched("sales", pipeline_body(LIMITED)))
    assert admission_scope(limited) == ("sales", 1)
    assert admission_scope(facts(source=Fetched("sales", pipeline_body(CHAIN)))) is None
    assert admission_scope(facts(spec={"pipelineSpec": LIMITED.to_api()})) is None
    assert admission_scope(facts(started(LIMITED), source=Fetched("sales", pipeline_body(LIMITED)))) is None
    with pytest.raises(ValueError, match="namespace's runs"):
        plan_run(limited)


def test_a_run_waits_while_the_active_runs_fill_the_limit_and_starts_when_one_finishes() -> None:
    body = Fetched("sales", pipeline_body(LIMITED))
    busy = plan_run(facts(source=body, peers=(peer("run-0", "2026-11-24T09:00:00Z", started=True),)))
    assert outcome(busy) == ("Pending", "WaitingForConcurrency")
    assert busy.wait_for == ("concurrency", "sales") and busy.wake_after is not None
    assert "1 of 1 allowed runs" in (busy.status.conditions or [])[0].message  # type: ignore[union-attr]
    freed = (peer("run-0", "2026-11-24T09:00:00Z", started=True, finished=True),)
    assert plan_run(facts(source=body, peers=freed)).replan


def test_runs_are_admitted_oldest_first_and_other_pipelines_do_not_count() -> None:
    body = Fetched("sales", pipeline_body(LIMITED))
    older_waiting = (peer("run-0", "2026-11-24T09:00:00Z", started=False),)
    plan = plan_run(facts(source=body, peers=older_waiting))
    assert outcome(plan) == ("Pending", "WaitingForConcurrency")
    assert "1 waiting run(s) first" in plan.status.conditions[0].message  # type: ignore[index,union-attr]
    newer_waiting = (peer("run-2", "2026-11-24T10:30:00Z", started=False),)
    assert plan_run(facts(source=body, peers=newer_waiting)).replan
    elsewhere = (peer("x", "2026-11-24T09:00:00Z", started=True, pipeline="other"),)
    assert plan_run(facts(source=body, peers=elsewhere)).replan


# --- after the snapshot -------------------------------------------------------------


def test_the_first_pass_after_the_snapshot_starts_the_roots() -> None:
    plan = plan_run(facts(started(CHAIN)))
    assert started_tasks(plan) == [("extract", 0)]
    pod = plan.starts[0].pod
    assert pod["metadata"]["labels"]["sluice.dev/task"] == "extract"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert task_phases(plan) == {"extract": "Running", "load": "Pending"}
    assert task_status(plan, "extract").pod_name == plan.starts[0].name
    assert plan.status is not None and plan.status.phase == "Running"


def test_a_pass_that_sees_nothing_new_does_nothing() -> None:
    first = plan_run(facts(started(CHAIN)))
    assert first.status is not None
    running = TaskObservation(first.starts[0].name, "Running")
    again = plan_run(facts(first.status, tasks={"extract": running}))
    assert again.status is None and again.starts == () and again.events == ()


def test_a_dependent_starts_once_its_upstream_succeeds_and_the_run_succeeds_at_the_end() -> None:
    status = started(CHAIN, phase="Running")
    plan = plan_run(facts(status, tasks={"extract": ran("extract", "Succeeded", completion_time=T0)}))
    assert started_tasks(plan) == [("load", 0)]
    done = {
        "extract": ran("extract", "Succeeded", completion_time=T0),
        "load": ran("load", "Succeeded", completion_time=LATER),
    }
    assert plan.status is not None
    final = plan_run(facts(plan.status, tasks=done, now=LATER))
    assert outcome(final) == ("Succeeded", "Succeeded")
    assert final.finished == "Succeeded"
    assert [(e.type, e.reason) for e in final.events] == [("Normal", "Succeeded")]
    assert final.wake_after is None


def test_a_failed_task_fails_the_run_with_events_for_the_task_and_the_run() -> None:
    failed = ran("extract", "Failed", completion_time=T0, reason="Error", message="exit code 2: boom")
    plan = plan_run(facts(started(CHAIN, phase="Running"), tasks={"extract": failed}))
    assert outcome(plan) == ("Failed", "TaskFailed")
    assert task_phases(plan)["load"] == "Skipped"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "TaskFailed"), ("Warning", "Failed")]
    assert plan.finished == "Failed" and plan.starts == ()


RETRIED = spec_of([{"name": "flaky", "retries": {"limit": 2, "backoff": {"initialSeconds": 10}}}])


def test_a_retry_whose_backoff_has_passed_starts_the_next_attempt() -> None:
    failed = ran("flaky", "Failed", completion_time=T0, message="boom")
    plan = plan_run(
        facts(started(RETRIED, phase="Running"), tasks={"flaky": failed}, now="2026-11-24T10:00:11Z")
    )
    assert started_tasks(plan) == [("flaky", 1)]
    assert plan.starts[0].name != failed.pod_name
    assert task_status(plan, "flaky").attempts == 2
    assert plan.status is not None and plan.status.phase == "Running"


def test_a_retry_not_yet_due_keeps_the_task_retrying_and_wakes_when_it_is() -> None:
    failed = ran("flaky", "Failed", completion_time=T0, message="boom")
    plan = plan_run(
        facts(started(RETRIED, phase="Running"), tasks={"flaky": failed}, now="2026-11-24T10:00:04Z")
    )
    assert plan.starts == ()
    entry = task_status(plan, "flaky")
    assert (entry.phase, entry.reason) == ("Running", "Retrying")
    assert "attempt 1 failed: boom" in entry.message and "2026-11-24T10:00:10Z" in entry.message
    assert plan.wake_after == pytest.approx(6 + 0.05)
    assert plan.finished is None


def test_retries_spent_fail_the_task_and_final_failures_are_never_retried() -> None:
    spent = ran("flaky", "Failed", attempt=2, completion_time=T0, message="boom")
    plan = plan_run(facts(started(RETRIED, phase="Running"), tasks={"flaky": spent}, now=LATER))
    assert plan.starts == () and outcome(plan) == ("Failed", "TaskFailed")
    assert task_status(plan, "flaky").attempts == 3
    rejected = ran("flaky", "Failed", completion_time=T0, reason="PodRejected", message="invalid")
    plan = plan_run(facts(started(RETRIED, phase="Running"), tasks={"flaky": rejected}, now=LATER))
    assert plan.starts == () and outcome(plan) == ("Failed", "TaskFailed")


def test_parallelism_counts_a_retrying_task_as_running() -> None:
    spec = spec_of(
        [
            {"name": "flaky", "retries": {"limit": 1, "backoff": {"initialSeconds": 60}}},
            {"name": "b"},
            {"name": "c"},
        ],
        parallelism=2,
    )
    failed = ran("flaky", "Failed", completion_time=T0, message="boom")
    plan = plan_run(facts(started(spec, phase="Running"), tasks={"flaky": failed}))
    assert started_tasks(plan) == [("b", 0)]
    assert task_phases(plan) == {"flaky": "Running", "b": "Running", "c": "Pending"}


def test_a_due_retry_starts_even_when_parallelism_is_full() -> None:
    spec = spec_of(
        [{"name": "flaky", "retries": {"limit": 1, "backoff": {"initialSeconds": 0}}}, {"name": "b"}],
        parallelism=1,
    )
    failed = ran("flaky", "Failed", completion_time=T0, message="boom")
    plan = plan_run(facts(started(spec, phase="Running"), tasks={"flaky": failed}))
    assert started_tasks(plan) == [("flaky", 1)]


RESULTS = spec_of(
    [
        {"name": "count", "results": [{"name": "rows"}]},
        {"name": "load", "dependsOn": ["count"], "args": ["--rows=$(tasks.count.results.rows)"]},
    ]
)


def test_a_result_flows_into_its_dependents_arguments() -> None:
    done = ran("count", "Succeeded", completion_time=T0, output="rows=42\n")
    plan = plan_run(facts(started(RESULTS, phase="Running"), tasks={"count": done}))
    assert started_tasks(plan) == [("load", 0)]
    assert plan.starts[0].pod["spec"]["containers"][0]["args"] == ["--rows=42"]
    assert task_status(plan, "count").results[0].value == "42"


def test_a_result_never_written_fails_its_reader_instead_of_starting_it() -> None:
    done = ran("count", "Succeeded", completion_time=T0, output="other=1\n")
    plan = plan_run(facts(started(RESULTS, phase="Running"), tasks={"count": done}))
    assert plan.starts == ()
    load = task_status(plan, "load")
    assert (load.phase, load.reason) == ("Failed", "MissingResult")
    assert "$(tasks.count.results.rows)" in load.message
    assert outcome(plan) == ("Failed", "TaskFailed")


def test_an_oversized_result_fails_the_task_and_is_not_retried() -> None:
    spec = spec_of([{"name": "count", "results": [{"name": "rows"}], "retries": {"limit": 3}}])
    done = ran("count", "Succeeded", completion_time=T0, output="rows=" + "9" * 4050)
    plan = plan_run(facts(started(spec, phase="Running"), tasks={"count": done}, now=LATER))
    count = task_status(plan, "count")
    assert (count.phase, count.reason) == ("Failed", "ResultTooLarge")
    assert plan.starts == () and outcome(plan) == ("Failed", "TaskFailed")


def test_when_skips_reach_a_fixpoint_in_one_pass() -> None:
    spec = spec_of(
        [
            {"name": "check", "results": [{"name": "rows"}]},
            {
                "name": "load",
                "dependsOn": ["check"],
                "when": [{"input": "$(tasks.check.results.rows)", "operator": "notin", "values": ["0"]}],
            },
            {
                "name": "empty-alert",
                "dependsOn": ["load"],
                "triggerRule": "NoneFailed",
                "when": [{"input": "$(tasks.load.status)", "operator": "in", "values": ["Skipped"]}],
            },
            {
                "name": "audit",
                "dependsOn": ["load"],
                "triggerRule": "NoneFailed",
                "when": [{"input": "$(tasks.load.status)", "operator": "in", "values": ["Succeeded"]}],
            },
        ]
    )
    done = ran("check", "Succeeded", completion_time=T0, output="rows=0")
    plan = plan_run(facts(started(spec, phase="Running"), tasks={"check": done}))
    assert started_tasks(plan) == [("empty-alert", 0)]
    load, audit = task_status(plan, "load"), task_status(plan, "audit")
    assert (load.phase, load.reason) == ("Skipped", "WhenConditionFalse")
    assert (audit.phase, audit.reason) == ("Skipped", "WhenConditionFalse")


def test_finally_tasks_start_after_everything_else_and_see_the_outcome() -> None:
    spec = spec_of([{"name": "a"}], final=[{"name": "notify", "args": ["$(tasks.status)"]}])
    failed = ran("a", "Failed", completion_time=T0, message="boom")
    plan = plan_run(facts(started(spec, phase="Running"), tasks={"a": failed}))
    assert started_tasks(plan) == [("notify", 0)]
    assert plan.starts[0].pod["spec"]["containers"][0]["args"] == ["Failed"]
    assert plan.status is not None and plan.status.phase == "Running"


def test_cancelling_stops_running_pods_and_cancels_unfinished_tasks() -> None:
    status = started(CHAIN, phase="Running")
    running = {"extract": ran("extract", "Running")}
    plan = plan_run(facts(status, spec={"pipelineRef": {"name": "sales"}, "cancelled": True}, tasks=running))
    assert plan.stops == ("pod-extract-0",) and plan.starts == ()
    assert outcome(plan) == ("Cancelled", "Cancelled")
    assert task_phases(plan) == {"extract": "Cancelled", "load": "Cancelled"}
    assert plan.finished == "Cancelled" and reasons(plan) == ["Cancelled"]
    assert "stopped 1 running task(s)" in plan.events[0].message


def test_cancelling_leaves_finished_tasks_and_their_pods_alone() -> None:
    done = {"extract": ran("extract", "Succeeded", completion_time=T0), "load": ran("load", "Running")}
    cancelled = {"pipelineRef": {"name": "sales"}, "cancelled": True}
    plan = plan_run(facts(started(CHAIN, phase="Running"), spec=cancelled, tasks=done, now=LATER))
    assert plan.stops == ("pod-load-0",)
    assert task_phases(plan) == {"extract": "Succeeded", "load": "Cancelled"}


def test_a_cancelled_run_is_cancelled_even_if_its_claim_was_refused() -> None:
    cancelled = {"pipelineRef": {"name": "sales"}, "cancelled": True}
    plan = plan_run(facts(started(WORKSPACE), spec=cancelled, claim_refused="bad"))
    assert outcome(plan) == ("Cancelled", "Cancelled")


def test_a_task_failure_is_announced_once_not_on_every_later_pass() -> None:
    spec = spec_of([{"name": "a"}, {"name": "b"}])
    failed = ran("a", "Failed", completion_time=T0, message="boom")
    first = plan_run(facts(started(spec, phase="Running"), tasks={"a": failed, "b": ran("b", "Running")}))
    assert reasons(first) == ["TaskFailed"] and first.finished is None
    assert first.status is not None
    done = {"a": failed, "b": ran("b", "Succeeded", completion_time=LATER)}
    later = plan_run(facts(first.status, tasks=done, now=LATER))
    assert reasons(later) == ["Failed"]


def test_a_run_past_its_timeout_stops_and_before_it_wakes_on_time() -> None:
    spec = {"pipelineRef": {"name": "sales"}, "timeoutSeconds": 60}
    status = started(CHAIN, phase="Running")
    running = {"extract": ran("extract", "Running")}
    early = plan_run(facts(status, spec=spec, tasks=running, now="2026-11-24T10:00:20Z"))
    assert early.stops == () and early.wake_after == pytest.approx(40 + 0.05)
    late = plan_run(facts(status, spec=spec, tasks=running, now="2026-11-24T10:01:00Z"))
    assert late.stops == ("pod-extract-0",)
    assert outcome(late) == ("Failed", "Timeout") and late.finished == "Failed"


def test_a_task_whose_create_failed_for_now_stays_pending_while_others_start() -> None:
    spec = spec_of([{"name": "a"}, {"name": "b"}])
    plan = plan_run(facts(started(spec), held=frozenset({"b"})))
    assert started_tasks(plan) == [("a", 0)]
    assert task_phases(plan) == {"a": "Running", "b": "Pending"}


def test_the_workspace_claim_is_created_with_the_first_task_and_recorded() -> None:
    plan = plan_run(facts(started(WORKSPACE)))
    assert plan.claim is not None
    name = plan.claim["metadata"]["name"]
    assert plan.status is not None and plan.status.workspace_claim_name == name
    volumes = plan.starts[0].pod["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == name
    recorded = plan_run(facts(started(WORKSPACE, workspace_claim_name=name)))
    assert recorded.claim is None and started_tasks(recorded) == [("a", 0)]


def test_no_claim_is_made_while_no_task_starts() -> None:
    plan = plan_run(facts(started(WORKSPACE), held=frozenset({"a"})))
    assert plan.claim is None and plan.starts == ()
    assert plan.status is None or plan.status.workspace_claim_name is None


def test_a_refused_workspace_claim_fails_the_run() -> None:
    plan = plan_run(facts(started(WORKSPACE), claim_refused="storage: must be a quantity"))
    assert outcome(plan) == ("Failed", "InvalidWorkspace")
    assert plan.starts == () and "storage: must be a quantity" in plan.events[0].message


def test_a_finished_run_is_left_alone() -> None:
    done = started(CHAIN, phase="Succeeded", completion_time=LATER)
    plan = plan_run(facts(done, spec={"pipelineRef": {"name": "sales"}, "cancelled": True}))
    assert plan == RunPlan()


def test_a_run_that_failed_before_starting_needs_no_admission_and_is_left_alone() -> None:
    refused = PipelineRunStatus(phase="Failed", completion_time=T0, pipeline_name="sales")
    later = facts(refused, source=Fetched("sales", pipeline_body(LIMITED)), now=LATER)
    assert admission_scope(later) is None
    assert plan_run(later) == RunPlan()


def test_scheduled_runs_see_their_scheduled_time_and_runs_by_hand_their_creation() -> None:
    spec = spec_of([{"name": "a", "args": ["$(context.scheduledDate)", "$(context.scheduledTime)"]}])
    by_hand = plan_run(facts(started(spec)))
    assert by_hand.starts[0].pod["spec"]["containers"][0]["args"] == [
        "2026-11-24",
        CREATED,
    ]
    annotations = {
        "sluice.dev/scheduled-time": "2026-11-23T02:00:00Z",
        "sluice.dev/scheduled-date": "2026-11-23",
    }
    scheduled = plan_run(facts(started(spec), annotations=annotations))
    args = scheduled.starts[0].pod["spec"]["containers"][0]["args"]
    assert args == ["2026-11-23", "2026-11-23T02:00:00Z"]


# --- the tracking finalizer and pods that go away -------------------------------------


def test_a_pods_finalizer_is_released_by_the_pass_that_records_its_outcome_and_not_before() -> None:
    status = started(CHAIN, phase="Running")
    first = plan_run(facts(status))
    assert first.status is not None
    name = first.starts[0].name
    running = TrackedPod(name, "extract", 0, ended=False)
    still = plan_run(facts(first.status, tasks={"extract": ran("extract", "Running")}, tracked=(running,)))
    assert still.release == ()
    done = ran("extract", "Succeeded", completion_time=T0, output="")
    # Ended and recorded, but nobody deletes it: it keeps its finalizer until the run ends.
    ended = replace(running, ended=True)
    recording = plan_run(facts(first.status, tasks={"extract": done}, tracked=(ended,)))
    assert recording.status is not None and task_status(recording, "extract").phase == "Succeeded"
    assert recording.release == ()
    ended = replace(running, ended=True, deleting=True)
    recording = plan_run(facts(first.status, tasks={"extract": done}, tracked=(ended,)))
    assert recording.release == (name,)
    # A pass whose status write is not needed (already recorded) still releases.
    load = TaskObservation(recording.starts[0].name, "Running")
    again = plan_run(facts(recording.status, tasks={"extract": done, "load": load}, tracked=(ended,)))
    assert again.status is None and again.release == (name,)


def test_a_failed_attempt_keeps_its_pod_until_its_retry_exists_then_releases_it() -> None:
    failed = ran("flaky", "Failed", completion_time=T0, message="boom")
    old = TrackedPod(failed.pod_name, "flaky", 0, ended=True, deleting=True)
    waiting = plan_run(
        facts(
            started(RETRIED, phase="Running"),
            tasks={"flaky": failed},
            tracked=(old,),
            now="2026-11-24T10:00:04Z",
        )
    )
    assert waiting.starts == () and waiting.release == ()
    retried = plan_run(
        facts(
            started(RETRIED, phase="Running"),
            tasks={"flaky": failed},
            tracked=(old,),
            now="2026-11-24T10:00:11Z",
        )
    )
    assert started_tasks(retried) == [("flaky", 1)]
    assert retried.release == (failed.pod_name,)


def test_a_finished_run_releases_every_ended_pod_and_a_deleted_run_every_pod() -> None:
    done = started(CHAIN, phase="Cancelled", completion_time=LATER)
    ended = TrackedPod("pod-extract-0", "extract", 0, ended=True)
    running = TrackedPod("pod-load-0", "load", 0, ended=False)
    plan = plan_run(facts(done, tracked=(ended, running)))
    # A pod still running under a finished run is stopped: nothing would
    # ever record it (the pass that ended the run did not stop it).
    assert plan == RunPlan(stops=("pod-load-0",), release=("pod-extract-0",))
    assert plan_gone((ended, running)) == ("pod-extract-0", "pod-load-0")
    # Pods of an earlier run of the same name go whatever this run's state.
    assert plan_run(facts(done, orphans=("old-pod",))).release == ("old-pod",)


def test_a_pod_that_vanished_before_its_outcome_was_recorded_is_a_lost_attempt_and_retried() -> None:
    first = plan_run(facts(started(RETRIED, phase="Running")))
    assert first.status is not None
    # No pod in the cache, no create pending: the pod is gone.
    lost = plan_run(facts(first.status, now=LATER))
    entry = task_status(lost, "flaky")
    assert (entry.phase, entry.reason) == ("Running", "Retrying")
    assert "disappeared" in entry.message
    assert lost.starts == () and lost.wake_after == pytest.approx(10 + 0.05)
    # Later passes keep the loss's time, so the retry comes due and starts.
    assert lost.status is not None
    waiting = plan_run(facts(lost.status, now="2026-11-24T10:00:35Z"))
    assert waiting.status is None and waiting.starts == ()
    retry = plan_run(facts(lost.status, now="2026-11-24T10:00:41Z"))
    assert started_tasks(retry) == [("flaky", 1)]


def test_an_overdue_pod_is_stopped_and_its_attempt_fails_with_timeout() -> None:
    timed = spec_of([{"name": "slow", "timeoutSeconds": 2}])
    running = ran("slow", "Running", look_again_at="2026-11-24T10:00:02Z")
    waiting = plan_run(facts(started(timed, phase="Running"), tasks={"slow": running}))
    assert waiting.stops == () and waiting.wake_after == pytest.approx(2 + 0.05)
    overdue = ran(
        "slow", "Failed", reason="Timeout", message="the task exceeded its timeout of 2s", stop_pod=True
    )
    plan = plan_run(facts(started(timed, phase="Running"), tasks={"slow": overdue}, now=LATER))
    assert plan.stops == ("pod-slow-0",)
    assert outcome(plan) == ("Failed", "TaskFailed")
    assert task_status(plan, "slow").reason == "Timeout"


# --- time to live after finishing -----------------------------------------------------


def test_a_finished_run_by_hand_lives_for_the_default_ttl_then_is_deleted() -> None:
    done = started(CHAIN, phase="Succeeded", completion_time=T0)
    alive = plan_run(facts(done, now=LATER, default_ttl_seconds=60))
    assert not alive.delete_run and alive.wake_after == pytest.approx(30 + 0.05)
    assert plan_run(facts(done, now="2026-11-24T10:01:00Z", default_ttl_seconds=60)).delete_run
    # 0 keeps finished runs forever.
    assert plan_run(facts(done, now="2030-01-01T00:00:00Z", default_ttl_seconds=0)) == RunPlan()


def test_a_runs_own_ttl_wins_and_scheduled_runs_are_left_to_their_history_limits() -> None:
    done = started(CHAIN, phase="Failed", completion_time=T0)
    own = {"pipelineRef": {"name": "sales"}, "ttlSecondsAfterFinished": 0}
    assert plan_run(facts(done, spec=own, default_ttl_seconds=3600)).delete_run
    scheduled = facts(
        done, now="2030-01-01T00:00:00Z", default_ttl_seconds=60, labels={"sluice.dev/scheduled-by": "sales"}
    )
    assert plan_run(scheduled) == RunPlan()
    assert plan_run(replace(scheduled, spec=PipelineRunSpec.model_validate(own))).delete_run


def test_an_unfinished_run_is_never_deleted_by_its_ttl() -> None:
    running = started(CHAIN, phase="Running")
    own = {"pipelineRef": {"name": "sales"}, "ttlSecondsAfterFinished": 0}
    assert not plan_run(
        facts(running, spec=own, now="2030-01-01T00:00:00Z", default_ttl_seconds=1)
    ).delete_run


def test_a_run_being_deleted_starts_nothing_and_releases_every_pod() -> None:
    # A foreground delete keeps the run while its pods go: none of their
    # deletions may read as failures to retry or to run AnyFailed tasks for.
    flaky = ran("flaky", "Failed", completion_time=T0, reason="PodDeleted", message="deleted")
    held = TrackedPod(flaky.pod_name, "flaky", 0, ended=False)
    plan = plan_run(
        facts(
            started(RETRIED, phase="Running"),
            tasks={"flaky": flaky},
            tracked=(held,),
            deleting=True,
            now=LATER,
        )
    )
    assert plan == RunPlan(release=(flaky.pod_name,))


def test_a_finished_run_an_unfinished_rerun_needs_outlives_its_ttl() -> None:
    done = started(CHAIN, phase="Failed", completion_time=T0)
    late = "2026-11-30T10:00:00Z"
    kept = plan_run(facts(done, now=late, default_ttl_seconds=60, needed_by_rerun=True))
    assert not kept.delete_run and kept.wake_after == pytest.approx(30)
    assert plan_run(facts(done, now=late, default_ttl_seconds=60)).delete_run


def test_the_pass_that_finishes_a_run_arms_its_time_to_live() -> None:
    status = started(CHAIN, phase="Running")
    done = {
        "extract": ran("extract", "Succeeded", completion_time=T0),
        "load": ran("load", "Succeeded", completion_time=T0),
    }
    final = plan_run(facts(status, tasks=done, now=T0, default_ttl_seconds=60))
    assert final.finished == "Succeeded" and final.wake_after == pytest.approx(60 + 0.05)
    own = {"pipelineRef": {"name": "sales"}, "ttlSecondsAfterFinished": 0}
    at_once = plan_run(facts(status, spec=own, tasks=done, now=T0))
    assert at_once.wake_after == pytest.approx(0.05)
    assert plan_run(facts(status, tasks=done, now=T0)).wake_after is None  # kept forever


def test_a_run_whose_status_would_outgrow_an_object_is_refused_at_once() -> None:
    # Written later, such a status is refused by etcd on every pass: the run
    # would hang with no reason shown. Terse 5,000-task pipelines still fit.
    terse = spec_of([{"name": f"t{i}"} for i in range(5000)])
    assert plan_run(facts(source=Fetched("sales", pipeline_body(terse)))).replan
    wordy = spec_of(
        [{"name": f"extract-the-daily-sales-of-every-region-partition-{i:05d}"} for i in range(5000)]
    )
    plan = plan_run(facts(source=Fetched("sales", pipeline_body(wordy))))
    assert outcome(plan) == ("Failed", "RunTooLarge")
    assert "split the pipeline" in plan.events[0].message


def test_declared_results_count_toward_the_size_a_run_may_reach() -> None:
    # 3,000 terse tasks fit; the same tasks each declaring a result could
    # bring up to the whole results budget into the object, and do not.
    plain = spec_of([{"name": f"t{i:04d}-{'x' * 40}"} for i in range(3000)])
    assert plan_run(facts(source=Fetched("sales", pipeline_body(plain)))).replan
    with_results = spec_of(
        [{"name": f"t{i:04d}-{'x' * 40}", "results": [{"name": "rows"}]} for i in range(3000)]
    )
    plan = plan_run(facts(source=Fetched("sales", pipeline_body(with_results))))
    assert outcome(plan) == ("Failed", "RunTooLarge")


def test_results_past_the_runs_budget_fail_the_task_that_crosses_it_and_stay_failed() -> None:
    # 300 tasks each writing a 1,000-byte result: about 250 fit in the run's
    # 256 KB budget. The first by name are kept; the one that crosses it
    # fails with the reason, rather than a later status write failing.
    names = [f"part-{i:03d}" for i in range(300)]
    spec = spec_of([{"name": n, "results": [{"name": "path"}]} for n in names])
    done = {n: ran(n, "Succeeded", completion_time=T0, output="path=" + "p" * 1000) for n in names}
    plan = plan_run(facts(started(spec, phase="Running"), tasks=done))
    accepted = [n for n in names if task_status(plan, n).phase == "Succeeded"]
    refused = [n for n in names if task_status(plan, n).reason == "ResultsOverBudget"]
    assert accepted == names[: len(accepted)] and refused == names[len(accepted) :]
    assert 200 < len(accepted) < 300
    assert "budget" in task_status(plan, refused[0]).message
    assert outcome(plan) == ("Failed", "TaskFailed")
    # Read back from the status on the next pass, with the pods still there:
    # the status it computes is the one recorded (so nothing is written).
    assert plan.status is not None
    again = plan_run(facts(plan.status, tasks=done))
    assert again.status is None and again.starts == ()


def test_results_recorded_first_keep_their_place_in_the_budget() -> None:
    # Late tasks whose names sort first cannot push out results that earlier
    # passes recorded (and downstream tasks may already have read).
    early = [f"b-{i:03d}" for i in range(240)]
    late = [f"a-{i:03d}" for i in range(20)]
    spec = spec_of([{"name": n, "results": [{"name": "path"}]} for n in early + late])
    output = "path=" + "p" * 1000
    first = {n: ran(n, "Succeeded", completion_time=T0, output=output) for n in early}
    plan = plan_run(facts(started(spec, phase="Running"), tasks=first))
    assert all(task_status(plan, n).phase == "Succeeded" for n in early)
    assert plan.status is not None
    both = first | {n: ran(n, "Succeeded", completion_time=T0, output=output) for n in late}
    later = plan_run(facts(plan.status, tasks=both))
    assert all(task_status(later, n).phase == "Succeeded" for n in early)
    assert any(task_status(later, n).reason == "ResultsOverBudget" for n in late)


def test_the_pass_that_starts_a_task_with_a_timeout_wakes_at_its_deadline() -> None:
    # A pod that never schedules sends no event: the creating pass itself
    # must come back when the attempt's deadline is due.
    spec = spec_of([{"name": "extract", "timeoutSeconds": 120}, {"name": "quick"}])
    plan = plan_run(facts(started(spec, phase="Running")))
    assert sorted(started_tasks(plan)) == [("extract", 0), ("quick", 0)]
    assert plan.wake_after == pytest.approx(120, abs=1)


def test_the_plan_keeps_a_blocked_condition_for_the_reconciler_to_clear() -> None:
    # Only the reconciler knows whether every call of a pass succeeded (the
    # finalizer releases come after the status write), so the plan never
    # turns Blocked False itself.
    from sluice.engine.blocked import Refusal, blocked_conditions, is_blocked

    spec = spec_of([{"name": "a"}, {"name": "b", "dependsOn": ["a"]}])
    refusal = Refusal(403, "patch", "pods", "etl", 'cannot patch resource "pods"')
    status = started(spec, phase="Running")
    status = status.model_copy(update={"conditions": blocked_conditions(status.conditions, refusal, T0)})
    plan = plan_run(facts(status, tasks={"a": ran("a", "Succeeded", completion_time=T0)}))
    assert started_tasks(plan) == [("b", 0)]
    assert plan.status is not None and is_blocked(plan.status.conditions)


def test_a_pipeline_without_a_workspace_lets_no_run_bring_one_but_an_inline_run_has_its_own() -> None:
    own = {"pipelineRef": {"name": "sales"}, "workspace": {"volume": HOSTPATH}}
    plan = plan_run(facts(spec=own, source=Fetched("sales", pipeline_body(CHAIN))))
    assert outcome(plan) == ("Failed", "WorkspaceOverrideNotAllowed")
    inline = {"pipelineSpec": CHAIN.to_api(), "workspace": {"volume": HOSTPATH}}
    assert plan_run(facts(spec=inline)).replan


def test_a_tasks_start_is_when_its_attempt_was_created_and_its_pod_starting_writes_nothing() -> None:
    spec = spec_of([{"name": "a"}])
    first = plan_run(facts(started(spec, phase="Running")))
    assert started_tasks(first) == [("a", 0)]
    assert task_status(first, "a").start_time == T0
    assert first.status is not None
    # Its pod starts later; the status already says all there is to say.
    pod_name = task_status(first, "a").pod_name
    running = TaskObservation(pod_name, "Running", LATER, attempt=0)
    assert plan_run(facts(first.status, tasks={"a": running}, now=LATER)).status is None


@pytest.mark.parametrize("waiting_for", ["pipeline", "concurrency"])
def test_a_run_cancelled_while_it_waits_ends_at_once(waiting_for: str) -> None:
    cancelled = {"pipelineRef": {"name": "sales"}, "cancelled": True}
    if waiting_for == "pipeline":
        waiting = facts(spec=cancelled, source=Fetched("sales", None))
    else:
        busy = (peer("run-0", "2026-11-24T09:00:00Z", started=True),)
        waiting = facts(spec=cancelled, source=Fetched("sales", pipeline_body(LIMITED)), peers=busy)
    plan = plan_run(waiting)
    assert outcome(plan) == ("Cancelled", "Cancelled")
    assert plan.finished == "Cancelled" and plan.wait_for is None and plan.starts == ()
    assert plan.status is not None and plan.status.completion_time == T0


TEMPLATE = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}
HOSTPATH = {"hostPath": {"path": "/var/lib"}}


@pytest.mark.parametrize(
    ("allowed", "wanted", "admitted"),
    [
        ("None", {"volumeClaimTemplate": TEMPLATE}, False),
        ("ClaimTemplate", {"volumeClaimTemplate": TEMPLATE}, True),
        ("ClaimTemplate", {"volume": HOSTPATH}, False),
        ("Any", {"volume": HOSTPATH}, True),
    ],
)
def test_a_run_replaces_its_pipelines_workspace_only_as_far_as_the_pipeline_allows(
    allowed: str, wanted: dict[str, Any], admitted: bool
) -> None:
    declared = spec_of([{"name": "a"}], workspace={"volumeClaimTemplate": TEMPLATE, "runOverride": allowed})
    own = {"pipelineRef": {"name": "sales"}, "workspace": wanted}
    plan = plan_run(facts(spec=own, source=Fetched("sales", pipeline_body(declared))))
    if admitted:
        assert plan.replan and plan.status is not None
        assert plan.status.pipeline_spec is not None and plan.status.pipeline_spec.workspace is not None
        assert plan.status.pipeline_spec.workspace.to_api()["mountPath"] == "/workspace"
    else:
        assert outcome(plan) == ("Failed", "WorkspaceOverrideNotAllowed")
        assert "runOverride" in plan.events[0].message


def test_tasks_see_the_data_interval_the_run_carries_or_the_one_its_schedule_implies() -> None:
    args = ["$(context.dataIntervalStart)", "$(context.dataIntervalEnd)"]
    spec = spec_of([{"name": "a", "args": args}])
    scheduled = spec.model_copy(update={"schedule": ScheduleSpec(cron="0 2 * * *", timezone="Europe/Paris")})
    interval = {"start": "2026-10-24T02:00:00+02:00", "end": "2026-10-25T02:00:00+02:00"}
    told = plan_run(facts(started(spec), spec={"pipelineRef": {"name": "sales"}, "dataInterval": interval}))
    assert told.starts[0].pod["spec"]["containers"][0]["args"] == [interval["start"], interval["end"]]
    # By hand, of a scheduled pipeline: the newest day complete at creation.
    by_hand = plan_run(facts(started(scheduled)))
    assert by_hand.starts[0].pod["spec"]["containers"][0]["args"] == [
        "2026-11-23T02:00:00+01:00",
        "2026-11-24T02:00:00+01:00",
    ]
    # By hand, no schedule: the empty interval at its creation.
    assert plan_run(facts(started(spec))).starts[0].pod["spec"]["containers"][0]["args"] == [CREATED, CREATED]
