"""The heart of a run's reconcile pass: ``plan_run(facts) -> RunPlan`` (pure).

The reconciler observes (the run, its tasks' pods from the cache,
and before the first task whatever the run names), calls ``plan_run`` once,
carries out the plan, writes the status the plan computed and posts its
Events. Every decision is here, with no I/O and no mutation of the facts, so
the same facts always give the same plan and each rule is unit-tested in
milliseconds (in the spirit of Tekton's ``PipelineRunFacts``).

A run's life has two halves:

* before its spec snapshot is recorded: resolve what it executes, wait for
  its Pipeline or a concurrency slot, or fail it; once admitted the plan's
  only act is to record the snapshot (``replan``), so no pod can exist for a
  spec the status does not hold;
* after: stop it (cancelled, timed out), or start what is ready, retry what
  failed, skip what ``when`` or the trigger rules rule out, and report.

Whatever the half, a plan also names the task pods whose tracking finalizer
may go: those whose outcome the status it writes has recorded.
"""

from __future__ import annotations

import functools
import json
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sluice.api import labels
from sluice.api.v1alpha1 import (
    FAILED_TASK_PHASES,
    FINISHED_RUN_PHASES,
    FINISHED_TASK_PHASES,
    RECORDED_TASK_PHASES,
    DataInterval,
    ParamValue,
    PipelineRunSpec,
    PipelineRunStatus,
    PipelineSpec,
    TaskRunStatus,
    TaskSpec,
)
from sluice.engine.admission import RECHECK_SECONDS, PeerRun, admission_wait
from sluice.engine.announce import Announcement, normal, warning
from sluice.engine.assets import (
    AssetUpdate,
    parse_triggered_by,
    triggered_variables,
    updates_due,
    with_recorded,
)
from sluice.engine.clock import WAKE_MARGIN_SECONDS, parse_time, rfc3339
from sluice.engine.conditions import READY, condition, set_condition, with_health
from sluice.engine.dag import Graph, build_graph, ready_tasks, task_verdict
from sluice.engine.data_interval import RunTimes, run_times
from sluice.engine.matrix import Fanout, expand, fanout_bytes, gathered, recorded_bytes, split_key, unit_key
from sluice.engine.observe import TaskObservation, TrackedPod, truncate
from sluice.engine.params import pod_references, references
from sluice.engine.render import RunIdentity, render_pod, workspace_claim
from sluice.engine.results import (
    RUN_RESULTS_BUDGET,
    declared_results,
    most_results_bytes,
    over_budget_message,
    stored_size,
)
from sluice.engine.retry import next_retry
from sluice.engine.run_source import INLINE, Fetched, NotYet, Refused, RunSource, resolve_source
from sluice.engine.run_status import (
    MESSAGE_BUDGET,
    compute_status,
    failed_status,
    stopped_status,
    task_statuses,
    unit_entries,
    waiting_tasks,
)
from sluice.engine.when import evaluate_when

WaitFor = tuple[Literal["pipeline", "concurrency"], str]


@dataclass(frozen=True)
class RunFacts:
    """Everything one pass knows about one run, as observed."""

    namespace: str
    name: str
    uid: str
    created: str
    now: str
    status: PipelineRunStatus
    spec: PipelineRunSpec | None
    # How long a run waits for its Pipeline to be applied (GitOps ordering).
    pipeline_grace_seconds: float
    spec_error: str | None = None  # why ``spec`` is None
    generation: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Each task's latest attempt (from its pod), once the run started.
    tasks: Mapping[str, TaskObservation] = field(default_factory=dict)
    # The run's pods that still hold the tracking finalizer.
    tracked: tuple[TrackedPod, ...] = ()
    # Pods left by an earlier run of the same name (deleted, then re-created).
    orphans: tuple[str, ...] = ()
    # The operator's ttlSecondsAfterFinished for runs made by hand (0: keep).
    default_ttl_seconds: int = 0
    # The run is being deleted (a foreground delete waits for its pods).
    deleting: bool = False
    # An unfinished rerun of this run still uses its workspace claim.
    needed_by_rerun: bool = False
    # Before the snapshot: the object ``source_to_fetch`` named, as read.
    source: Fetched | None = None
    # Before the snapshot, when the pipeline limits concurrent runs: the
    # namespace's runs. Required then (see ``admission_scope``).
    peers: tuple[PeerRun, ...] | None = None
    # Tasks whose pod create the API server refused for now (quota, rate
    # limit): they stay Pending this pass and are tried again later.
    held: frozenset[str] = frozenset()
    # The API server's message refusing the run's workspace claim for good.
    claim_refused: str | None = None


@dataclass(frozen=True)
class PodStart:
    task: str
    attempt: int
    pod: dict[str, Any]

    @property
    def name(self) -> str:
        name: str = self.pod["metadata"]["name"]
        return name


@dataclass(frozen=True)
class RunPlan:
    """What one pass does, in this order: delete ``stops``, create ``claim``
    then ``starts``, write ``status``, then release the finalizers of
    ``release`` and post ``events``.
    """

    status: PipelineRunStatus | None = None  # None: the stored status is already right
    stops: tuple[str, ...] = ()  # pods to delete
    claim: dict[str, Any] | None = None  # the run's workspace claim, before any pod
    starts: tuple[PodStart, ...] = ()
    # Pods whose outcome ``status`` (or the stored one) records: drop their finalizer.
    release: tuple[str, ...] = ()
    # The run's time to live is over: delete it (its pods go with it).
    delete_run: bool = False
    events: tuple[Announcement, ...] = ()
    wake_after: float | None = None  # seconds until the run needs another pass
    # Wake the run when this Pipeline appears, or when one of its runs frees a slot.
    wait_for: WaitFor | None = None
    finished: str | None = None  # the final phase the run reaches in this pass
    record_last_run: str | None = None  # show this run as the pipeline's last run
    # Updates of assets to record on their Asset objects before ``status``
    # (which lists them as recorded) is written.
    asset_updates: tuple[AssetUpdate, ...] = ()
    replan: bool = False  # the status is a new spec snapshot: write it, then plan on it


def plan_run(facts: RunFacts) -> RunPlan:
    return _plan_run(facts)


def _plan_run(facts: RunFacts) -> RunPlan:
    if facts.deleting:
        # Nothing more may start, and nothing is left to record: the garbage
        # collector is deleting the pods, which only wait for their finalizer.
        return RunPlan(release=facts.orphans + plan_gone(facts.tracked))
    if facts.status.finished:
        plan = _plan_finished(facts)
    elif not facts.status.started:
        plan = _plan_start(facts)
    else:
        plan = _plan_progress(facts)
    recorded = plan.status if plan.status is not None else facts.status
    if recorded.finished and not facts.status.finished:
        # The pass that finishes a run arms its time to live: no later event
        # may come to do it (the status write's own event wakes nothing).
        ttl = _plan_finished(replace(facts, status=recorded))
        plan = replace(plan, wake_after=WAKE_MARGIN_SECONDS if ttl.delete_run else ttl.wake_after)
    kept = kept_current(recorded, facts.generation, facts.now)
    if kept is not None:
        recorded = kept
        plan = replace(plan, status=recorded)
    updates = updates_due(recorded, facts.namespace, facts.name, facts.uid, facts.now)
    if updates:
        # Recorded on the Assets first, then listed in the status: a pass cut
        # short between the two records them again, which finds them there.
        recorded = with_recorded(recorded, updates)
        plan = replace(plan, status=recorded, asset_updates=updates)
    return replace(plan, release=facts.orphans + releasable(recorded, facts.tracked))


def kept_current(status: PipelineRunStatus, generation: int | None, now: str) -> PipelineRunStatus | None:
    """The status with ``observedGeneration`` at the run's generation and the
    health conditions in place, when either is behind; None when both are.

    What GitOps tools read: a run cancelled by an edit of its spec (a new
    generation) must say it saw that edit, or kstatus reads it as in
    progress for ever; a run finished before the health conditions existed
    (an upgrade) gets them on its next pass.
    """
    conditions = status.conditions or []
    missing_health = bool(conditions) and not any(c.type == READY for c in conditions)
    behind = generation is not None and status.observed_generation != generation and bool(conditions)
    if not (missing_health or behind):
        return None
    update: dict[str, object] = {"observed_generation": generation if behind else status.observed_generation}
    if missing_health:
        update["conditions"] = with_health(conditions, now)
    return status.model_copy(update=update)


def _plan_finished(facts: RunFacts) -> RunPlan:
    """A finished run waits for its time to live to end. A pod of it still
    running (a run ended without the pass that stops its pods: its status
    write was refused) is stopped: nothing will ever record its outcome.
    """
    stops = tuple(pod.name for pod in facts.tracked if not pod.ended)
    left = ttl_left(facts.spec, facts.labels, facts.status, facts.default_ttl_seconds, facts.now)
    if left is None:
        return RunPlan(stops=stops)
    if facts.needed_by_rerun:
        # Its workspace claim is the rerun's: look again once the rerun may be done.
        return RunPlan(stops=stops, wake_after=max(left, RECHECK_SECONDS))
    if left <= 0:
        return RunPlan(stops=stops, delete_run=True)
    return RunPlan(stops=stops, wake_after=left + WAKE_MARGIN_SECONDS)


def ttl_left(
    spec: PipelineRunSpec | None,
    run_labels: Mapping[str, str],
    status: PipelineRunStatus,
    default_ttl_seconds: int,
    now: str,
) -> float | None:
    """Seconds until a finished run is deleted; None when it is kept.

    The run's own ``ttlSecondsAfterFinished`` wins; otherwise a run made by
    hand gets the operator's default, and a scheduled run none (its
    schedule's history limits prune it).
    """
    if not status.finished or status.completion_time is None:
        return None
    ttl = spec.ttl_seconds_after_finished if spec is not None else None
    if ttl is None:
        if labels.SCHEDULED_BY in run_labels or default_ttl_seconds <= 0:
            return None
        ttl = default_ttl_seconds
    age = (parse_time(now) - parse_time(status.completion_time)).total_seconds()
    return ttl - age


def releasable(status: PipelineRunStatus, tracked: tuple[TrackedPod, ...]) -> tuple[str, ...]:
    """The ended pods whose attempt ``status`` has recorded for good: a later
    attempt of their task, or their own attempt in a final phase (with its
    exit code, message and results). A finished run records all it ever will.
    A failed attempt waiting for its retry keeps its pod: the retry is
    computed from that pod.

    Only pods someone is deleting are released while the run goes on; the
    others wait for the run to finish. The finalizer only matters to a
    delete, and releasing on the way costs an API call on every DAG edge.
    """
    entries = {entry.name: entry for entry in unit_entries(status)}
    release = []
    for pod in tracked:
        if not pod.ended or not (pod.deleting or status.finished):
            continue
        entry = entries.get(pod.task)
        recorded = (entry.attempts or 1) - 1 if entry is not None else -1
        if (
            status.finished
            or recorded > pod.attempt
            or (
                recorded == pod.attempt
                and entry is not None
                and entry.phase in RECORDED_TASK_PHASES
                and entry.reason != "Retrying"
            )
        ):
            release.append(pod.name)
    return tuple(release)


def plan_gone(tracked: tuple[TrackedPod, ...]) -> tuple[str, ...]:
    """The pods to release when their run no longer exists: all of them,
    since there is no status left to record anything in (the garbage
    collector is deleting them).
    """
    return tuple(pod.name for pod in tracked)


def admission_scope(facts: RunFacts) -> tuple[str, int] | None:
    """(pipeline, maxConcurrentRuns) when starting this run takes one of a
    pipeline's limited slots: the reconciler then reads the peers and admits
    one run of that pipeline at a time.
    """
    if facts.status.started or facts.status.finished or facts.spec is None:
        return None
    source = _resolve(facts)
    if not isinstance(source, RunSource):
        return None
    limit = _admission_limit(source)
    return (source.pipeline_name, limit) if limit else None


def _admission_limit(source: RunSource) -> int | None:
    """The pipeline's maxConcurrentRuns, when it applies (never to an inline spec)."""
    return source.spec.max_concurrent_runs if source.pipeline_name != INLINE else None


# --- before the snapshot ------------------------------------------------------------


def _resolve(facts: RunFacts) -> RunSource | Refused | NotYet:
    assert facts.spec is not None
    waited = (parse_time(facts.now) - parse_time(facts.created)).total_seconds()
    return resolve_source(facts.spec, facts.source, facts.namespace, waited, facts.pipeline_grace_seconds)


def _plan_start(facts: RunFacts) -> RunPlan:
    if facts.spec is None:
        return _refuse(facts, Refused("InvalidSpec", f"spec is invalid: {facts.spec_error}"))
    if facts.spec.cancelled:
        # Waiting (for its Pipeline, for a slot) is no reason to stay: it ends
        # now, and leaves the queue it was in.
        why = "the run was cancelled (spec.cancelled) before it started"
        return RunPlan(
            status=failed_status(facts.status, "Cancelled", why, facts.now, phase="Cancelled"),
            events=(warning("Cancelled", why),),
            finished="Cancelled",
        )
    source = _resolve(facts)
    if isinstance(source, Refused):
        return _refuse(facts, source)
    if isinstance(source, NotYet):
        return _wait(
            facts, source.pipeline_name, "PipelineNotFound", source.message, "pipeline", source.retry_after
        )
    limit = _admission_limit(source)
    if limit:
        if facts.peers is None:
            raise ValueError("admission needs the namespace's runs (see admission_scope)")
        message = admission_wait(facts.name, facts.created, source.pipeline_name, limit, facts.peers)
        if message is not None:
            return _wait(
                facts, source.pipeline_name, "WaitingForConcurrency", message, "concurrency", RECHECK_SECONDS
            )
    return _admit(facts, source)


# What a run's object may grow to, below etcd's 1.5 MiB per object (room
# left for metadata, conditions and the API server's managedFields).
STATUS_SIZE_LIMIT = 1_450_000


def base_size(run_name: str, pipeline: PipelineSpec, spec: PipelineRunSpec | None) -> int:
    """Bytes a run's object may reach without its instances: its spec, the
    snapshot, one finished entry per task (name, pod name, times), the
    messages' shared budget, and the most its declared results may take
    (within their own budget). Calibrated on a 5,000-task run, whose object
    measured 1.20 MB.
    """
    snapshot = len(json.dumps(pipeline.to_api(), separators=(",", ":")))
    tasks = [*pipeline.tasks, *(pipeline.finally_ or ())]
    entries = sum(100 + 2 * len(task.name) + len(run_name) for task in tasks)
    own = len(json.dumps(spec.to_api(), separators=(",", ":"))) if spec is not None else 0
    # The params are written again in the status (status.params).
    own *= 2
    fans = any(task.matrix is not None for task in tasks)
    # Instances write messages and results of their own: count the budgets whole.
    most = sum(most_results_bytes(task) for task in tasks)
    results = min(RUN_RESULTS_BUDGET, RUN_RESULTS_BUDGET if fans and most else most)
    messages = MESSAGE_BUDGET if fans else min(MESSAGE_BUDGET, 100 * len(tasks))
    return own + snapshot + entries + messages + results


def status_size_estimate(run_name: str, source: RunSource, spec: PipelineRunSpec) -> int:
    """``base_size`` and the instances known before the run starts (literal
    values, params); those read from a result are measured when they are
    expanded (``within_status_room``).
    """
    size = base_size(run_name, source.spec, spec)
    params = {f"params.{name}": value for name, value in source.params.items()}
    for task in [*source.spec.tasks, *(source.spec.finally_ or ())]:
        if task.matrix is not None:
            fanout = expand(task.matrix, params)
            size += fanout_bytes(task.name, run_name, fanout)
    return size


def _admit(facts: RunFacts, source: RunSource) -> RunPlan:
    """Record what the run executes; its first tasks are planned on that record.
    A run whose status could not be written once it grows is refused now,
    with the reason, rather than stuck later on a write etcd refuses.
    """
    assert facts.spec is not None
    size = status_size_estimate(facts.name, source, facts.spec)
    if size > STATUS_SIZE_LIMIT:
        return _refuse(
            facts,
            Refused(
                "RunTooLarge",
                f"this run's status would reach about {size // 1000} KB, past the "
                f"{STATUS_SIZE_LIMIT // 1000} KB a Kubernetes object may hold: "
                "split the pipeline, or shorten its task names and specs",
                source.pipeline_name,
            ),
        )
    given = facts.spec.data_interval if facts.spec else None
    times = source.times or run_times(facts.annotations, given, source.spec.schedule, facts.created)
    snapshot = facts.status.model_copy(
        update={
            "pipeline_name": source.pipeline_name,
            "pipeline_spec": source.spec,
            "params": [ParamValue(name=k, value=v) for k, v in source.params.items()] or None,
            "observed_generation": facts.generation,
            "start_time": facts.now,
            "tasks": source.reused or None,
            "workspace_claim_name": source.claim,
            "scheduled_time": times.scheduled_time,
            "scheduled_date": times.scheduled_date,
            "data_interval": times.data_interval,
            "triggered_by": source.triggered_by
            or parse_triggered_by(facts.annotations.get(labels.TRIGGERED_BY)),
        }
    )
    snapshot = compute_status(snapshot, source.graph, {}, facts.now)
    verb = f"re-running run {facts.spec.rerun_of.name}:" if facts.spec.rerun_of else "running"
    started = normal("Started", f"{verb} {len(source.graph.order)} tasks of pipeline {source.pipeline_name}")
    # The scheduler records its own runs in order; only record runs made by hand.
    by_hand = (
        source.pipeline_name != INLINE
        and labels.SCHEDULED_BY not in facts.labels
        and labels.BACKFILL not in facts.labels  # a Backfill's old dates are not the newest run
    )
    return RunPlan(
        status=snapshot,
        events=(started,),
        record_last_run=source.pipeline_name if by_hand else None,
        replan=True,
    )


def _refuse(facts: RunFacts, refusal: Refused) -> RunPlan:
    failed = failed_status(facts.status, refusal.reason, refusal.message, facts.now)
    if refusal.pipeline_name:
        failed = failed.model_copy(update={"pipeline_name": refusal.pipeline_name})
    return RunPlan(
        status=failed,
        events=(warning(refusal.reason, refusal.message),),
        finished="Failed",
    )


def _wait(
    facts: RunFacts,
    pipeline: str,
    reason: str,
    message: str,
    on: Literal["pipeline", "concurrency"],
    retry_after: float,
) -> RunPlan:
    """Show a run that cannot start yet as Pending, with why in its condition."""
    waiting = facts.status.model_copy(
        update={
            "phase": "Pending",
            "pipeline_name": pipeline,
            "conditions": set_condition(
                facts.status.conditions, condition("Succeeded", "Unknown", reason, message, facts.now)
            ),
        }
    )
    return RunPlan(status=_changed(facts.status, waiting), wait_for=(on, pipeline), wake_after=retry_after)


# --- after the snapshot -------------------------------------------------------------


def _plan_progress(facts: RunFacts) -> RunPlan:
    status, now = facts.status, facts.now
    spec = status.pipeline_spec
    assert spec is not None
    graph = build_graph(spec)
    tasks = {task.name: task for task in [*spec.tasks, *(spec.finally_ or ())]}
    observed = lost_attempts(status, keep_recorded(status, facts.tasks), now)
    stop = stop_reason(facts.spec, status, now)
    if stop is not None:
        return _stop(facts, graph, observed, stop)
    if facts.claim_refused is not None:
        return _refuse(facts, Refused("InvalidWorkspace", f"workspace claim rejected: {facts.claim_refused}"))
    overdue = tuple(obs.pod_name for obs in observed.values() if obs.stop_pod)
    deadlines = [
        (parse_time(obs.look_again_at) - parse_time(now)).total_seconds()
        for obs in observed.values()
        if obs.phase == "Running" and obs.look_again_at
    ]
    units = UnitSpecs(tasks)
    observed, retries_due, wakes = plan_retries(units, observed, now)
    wakes += deadlines
    observed = collect_results(units, observed, status)
    identity = RunIdentity(facts.namespace, facts.name, facts.uid, status.pipeline_name or INLINE)
    interval = facts.spec.data_interval if facts.spec else None
    base = run_variables(identity, status, facts.annotations, facts.created, interval)
    room = functools.cache(lambda: STATUS_SIZE_LIMIT - base_size(facts.name, spec, facts.spec))
    decided = decide_when(status, graph, tasks, observed, base, facts.name, room)
    variables, fanouts = decided.variables, decided.fanouts
    wanted = [(name, 0) for name in ready_units(graph, tasks, decided, spec.parallelism)] + retries_due
    wanted = [(name, attempt) for name, attempt in wanted if name not in facts.held]

    def scope(key: str) -> Mapping[str, str]:
        task, index = split_key(key)
        return variables if index is None else ChainMap(fanouts[task].variables(index), variables)

    starts, observed = startable(wanted, units, scope, observed, now)

    claim_name = status.workspace_claim_name
    claim = workspace_claim(identity, spec) if starts and not claim_name else None
    if claim is not None:
        claim_name = claim["metadata"]["name"]
    pods = tuple(
        PodStart(
            key,
            attempt,
            render_pod(identity, spec, units[key], scope(key), attempt, claim_name, split_key(key)[1]),
        )
        for key, attempt in starts
    )
    for pod in pods:
        # A task's startTime is when Sluice started its attempt (as Tekton
        # records a TaskRun's): known now, so the pod's own start needs no
        # second status write.
        observed[pod.task] = TaskObservation(pod.name, "Running", now, attempt=pod.attempt)
        # Its deadline counts from its creation (about now) until it starts:
        # a pod that never schedules sends no event to wake the run.
        if seconds := pod.pod["spec"].get("activeDeadlineSeconds"):
            wakes.append(float(seconds))

    base_status = status.model_copy(update={"workspace_claim_name": claim_name})
    new_status = compute_status(base_status, graph, observed, now, decided.skipped, fanouts)
    finished = new_status.phase in FINISHED_RUN_PHASES
    if not finished:
        timeout = timeout_wake(facts.spec, status, now)
        if timeout is not None:
            wakes.append(timeout)
    changed = _changed(status, new_status)
    return RunPlan(
        status=changed,
        stops=overdue,
        claim=claim,
        starts=pods,
        events=announcements(status, new_status) if changed is not None else (),
        wake_after=min(wakes) + WAKE_MARGIN_SECONDS if wakes and not finished else None,
        finished=new_status.phase if finished and status.phase != new_status.phase else None,
    )


def _stop(
    facts: RunFacts, graph: Graph, observed: Mapping[str, TaskObservation], stop: tuple[str, str, str]
) -> RunPlan:
    """Delete the run's unfinished pods, then end it."""
    phase, reason, message = stop
    active = tuple(obs.pod_name for obs in observed.values() if obs.phase == "Running" and obs.pod_name)
    final = stopped_status(facts.status, graph, observed, phase, reason, message, facts.now)
    return RunPlan(
        status=final,
        stops=active,
        events=(warning(reason, f"{message}; stopped {len(active)} running task(s)"),),
        finished=phase,
    )


def stop_reason(
    spec: PipelineRunSpec | None, status: PipelineRunStatus, now: str
) -> tuple[str, str, str] | None:
    """(phase, reason, message) when the run must stop now: cancelled by
    the user, or past its timeout.
    """
    if spec is None:
        return None
    if spec.cancelled:
        return "Cancelled", "Cancelled", "the run was cancelled (spec.cancelled)"
    timeout = spec.timeout_seconds
    if timeout and status.start_time:
        elapsed = (parse_time(now) - parse_time(status.start_time)).total_seconds()
        if elapsed >= timeout:
            return "Failed", "Timeout", f"the run exceeded its timeout of {timeout}s"
    return None


def timeout_wake(spec: PipelineRunSpec | None, status: PipelineRunStatus, now: str) -> float | None:
    """Seconds until the run's timeout, if it has one."""
    if spec is None or not spec.timeout_seconds or not status.start_time:
        return None
    elapsed = (parse_time(now) - parse_time(status.start_time)).total_seconds()
    return max(0.0, spec.timeout_seconds - elapsed)


def keep_recorded(
    status: PipelineRunStatus, observed: Mapping[str, TaskObservation]
) -> dict[str, TaskObservation]:
    """Drop observations of an attempt whose outcome is recorded, or of an
    older one: a recorded outcome stands. Such a view lags the status (a
    cache not yet caught up after a restart or a failover), or its pod was
    deleted since (stopped past a deadline), which would otherwise retell
    the outcome as a deletion.
    """
    recorded = {
        e.name: (e.attempts or 1) - 1
        for e in unit_entries(status)
        if e.phase in RECORDED_TASK_PHASES and e.reason != "Retrying"
    }
    return {
        name: obs
        for name, obs in observed.items()
        if not (name in recorded and obs.attempt <= recorded[name])
    }


def unseen_pods(status: PipelineRunStatus, observed: Mapping[str, TaskObservation]) -> tuple[str, ...]:
    """Pods the status shows running that no observation covers: before
    calling them lost, the reconciler asks the API server (a watch may lag).
    """
    return tuple(
        entry.pod_name
        for entry in unit_entries(status)
        if entry.phase == "Running" and entry.pod_name and entry.name not in observed
    )


def lost_attempts(
    status: PipelineRunStatus, observed: dict[str, TaskObservation], now: str
) -> dict[str, TaskObservation]:
    """Tasks the status shows running on a pod that no longer exists (its
    finalizer removed by hand, then deleted): the attempt is lost, and
    counts as a failed one (PodLost) rather than silently starting over.
    """
    result = dict(observed)
    unseen = set(unseen_pods(status, observed))
    for entry in unit_entries(status):
        if entry.pod_name not in unseen:
            continue
        result[entry.name] = TaskObservation(
            entry.pod_name,
            "Failed",
            entry.start_time,
            # Once recorded (Retrying), the loss keeps its time, so the retry stays due when it was.
            entry.completion_time or now,
            reason="PodLost",
            message=f"the task's pod {entry.pod_name} disappeared before its outcome was recorded",
            attempt=(entry.attempts or 1) - 1,
        )
    return result


def plan_retries(
    tasks: Mapping[str, TaskSpec], observed: Mapping[str, TaskObservation], now: str
) -> tuple[dict[str, TaskObservation], list[tuple[str, int]], list[float]]:
    """(observations, retries due now, seconds until the others). A failed
    attempt with retries left keeps its task Running ("Retrying") until the
    next attempt starts.
    """
    result = dict(observed)
    due: list[tuple[str, int]] = []
    wakes: list[float] = []
    moment = parse_time(now)
    for name, obs in observed.items():
        retry = next_retry(tasks[name].retries, obs, moment)
        if retry is None:
            continue
        wait = (retry.due - moment).total_seconds()
        if wait <= 0:
            due.append((name, retry.attempt))
        else:
            wakes.append(wait)
        failure = obs.message or obs.reason
        message = f"attempt {obs.attempt + 1} failed: {failure}; next attempt at {rfc3339(retry.due)}"
        result[name] = replace(obs, phase="Running", reason="Retrying", message=truncate(message))
    return result, due, wakes


def collect_results(
    tasks: Mapping[str, TaskSpec], observed: Mapping[str, TaskObservation], status: PipelineRunStatus
) -> dict[str, TaskObservation]:
    """Succeeded tasks with their declared results parsed. A broken size
    limit fails the task (ResultTooLarge), and so does a task whose results
    would take the run's past its budget (ResultsOverBudget), rather than a
    status write the API server refuses later with no reason shown.

    Stable from pass to pass: results already recorded are counted first
    (pods or not), then new ones by task name, and recorded bytes only grow,
    so a task accepted once stays accepted and one refused stays refused.
    """
    result = dict(observed)
    recorded = {
        e.name: stored_size((r.name, r.value) for r in e.results or ())
        for e in unit_entries(status)
        if e.phase == "Succeeded" and e.results
    }
    pending = [name for name, obs in observed.items() if obs.phase == "Succeeded" and obs.output is not None]
    used = sum(size for name, size in recorded.items() if name not in pending)
    for name in sorted(pending, key=lambda n: (n not in recorded, split_key(n)[0], split_key(n)[1] or 0)):
        obs = observed[name]
        values, error = declared_results(tasks[name], obs.output)
        size = stored_size(values)
        if error is not None:
            result[name] = replace(obs, phase="Failed", reason="ResultTooLarge", message=error)
        elif size and used + size > RUN_RESULTS_BUDGET:
            message = over_budget_message(used, size)
            result[name] = replace(obs, phase="Failed", reason="ResultsOverBudget", message=message)
        else:
            used += size
            result[name] = replace(obs, results=tuple(sorted(values.items())))
    return result


def run_variables(
    run: RunIdentity,
    status: PipelineRunStatus,
    annotations: Mapping[str, str],
    created: str,
    interval: DataInterval | None = None,
) -> dict[str, str]:
    """Substitution values. The times are those frozen in the status when the
    run started; a run started before they were frozen derives them again
    (``interval``: its own spec.dataInterval, if any).
    """
    if status.scheduled_time and status.scheduled_date and status.data_interval:
        times = RunTimes(status.scheduled_time, status.scheduled_date, status.data_interval)
    else:
        schedule = status.pipeline_spec.schedule if status.pipeline_spec else None
        times = run_times(annotations, interval, schedule, created)
    variables = {f"params.{p.name}": p.value for p in status.params or ()}
    variables.update(
        {
            "context.pipelineRun.name": run.name,
            "context.pipelineRun.namespace": run.namespace,
            "context.pipelineRun.uid": run.uid,
            "context.pipeline.name": run.pipeline_name,
            "context.scheduledTime": times.scheduled_time,
            "context.scheduledDate": times.scheduled_date,
            "context.dataIntervalStart": times.data_interval.start,
            "context.dataIntervalEnd": times.data_interval.end,
        }
    )
    if status.pipeline_spec is not None:
        variables.update(triggered_variables(status.pipeline_spec, status.triggered_by or ()))
    return variables


class UnitSpecs(Mapping[str, TaskSpec]):
    """Task specs by unit key: an instance ``task[i]`` runs its task's spec."""

    def __init__(self, tasks: Mapping[str, TaskSpec]) -> None:
        self.tasks = tasks

    def __getitem__(self, key: str) -> TaskSpec:
        return self.tasks[split_key(key)[0]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True)
class Decided:
    """What one pass settled before starting anything: tasks ``when`` skips
    (-> why), the fan-outs of tasks cleared to run, every task's phase and
    entry, and the substitution values.
    """

    skipped: dict[str, str]
    fanouts: dict[str, Fanout]
    phases: dict[str, str]
    entries: dict[str, TaskRunStatus]
    variables: dict[str, str]

    def instance_phases(self) -> dict[str, list[str]]:
        """The instances' phases of the tasks fanned out in this pass (not a
        rerun's reused instances of a task not yet cleared to run again).
        """
        return {
            name: [i.phase for i in entry.instances]
            for name, entry in self.entries.items()
            if entry.instances and name in self.fanouts and not self.fanouts[name].failed
        }


def decide_when(
    status: PipelineRunStatus,
    graph: Graph,
    tasks: Mapping[str, TaskSpec],
    observed: Mapping[str, TaskObservation],
    base: Mapping[str, str],
    run_name: str = "",
    room: Callable[[], int] = lambda: STATUS_SIZE_LIMIT,
) -> Decided:
    """Skips by `when` and fan-outs, to a fixpoint: a skip, or a matrix with
    no instances, can clear further tasks, whose `when` is then evaluated.

    A task with a matrix is expanded whenever its trigger rule is met and its
    `when` holds, on every pass: what it reads is frozen in the status, so
    the instances are the same each time.
    """
    skipped: dict[str, str] = {}
    fanouts: dict[str, Fanout] = {}
    recorded = {t.name: t for t in status.tasks or ()}
    while True:
        # The task entries alone (not the whole status, with its outcome
        # condition): this runs once per skip round, on every pass.
        phases, listed = task_statuses(graph, observed, recorded, skipped, fanouts)
        entries = {entry.name: entry for entry in listed}
        variables = task_variables(base, graph, tasks, entries)
        decided = Decided(skipped, fanouts, phases, entries, variables)
        instances = decided.instance_phases()
        newly = {
            name: why
            for name in ready_tasks(graph, phases, instances=instances)
            if name not in skipped and (why := evaluate_when(tasks[name].when, variables)) is not None
        }
        fanned = {
            name: expand(matrix, variables)
            for name in graph.order
            if (matrix := tasks[name].matrix) is not None
            and name not in fanouts
            and name not in skipped
            and name not in newly
            and task_verdict(graph, name, phases, instances) == "run"
            and evaluate_when(tasks[name].when, variables) is None
        }
        if not newly and not fanned:
            return decided
        skipped.update(newly)
        fanouts.update(within_status_room(graph, recorded, fanouts, fanned, run_name, room))


def within_status_room(
    graph: Graph,
    recorded: Mapping[str, TaskRunStatus],
    held: Mapping[str, Fanout],
    new: Mapping[str, Fanout],
    run_name: str,
    room: Callable[[], int],
) -> dict[str, Fanout]:
    """``new`` fan-outs; one whose instances would not fit in the run's
    status (``room``: bytes left for all instances) fails instead. Fan-outs
    the status records are counted first and always kept, whatever round
    or pass expands them: a task whose instances run is never refused later.
    """
    reserved = {name: entry for name, entry in recorded.items() if entry.instances}
    if all(name in reserved for name in new):
        return dict(new)
    used = sum(
        fanout_bytes(name, run_name, held[name]) if name in held else recorded_bytes(reserved[name], run_name)
        for name in set(held) | set(reserved)
    )
    available = room()
    result: dict[str, Fanout] = {}
    for name in sorted(new, key=graph.order.index):
        fanout = new[name]
        if name in reserved:
            result[name] = fanout
            continue
        size = fanout_bytes(name, run_name, fanout)
        if used + size > available:
            fanout = Fanout(
                reason="TooManyInstances",
                message=f"its {len(fanout.instances)} instances would take about {size // 1000} KB of the "
                f"run's status, which has {max(0, available - used) // 1000} KB left of the "
                f"{STATUS_SIZE_LIMIT // 1000} KB a Kubernetes object may hold; split the work over "
                "several runs",
            )
        else:
            used += size
        result[name] = fanout
    return result


def task_variables(
    base: Mapping[str, str],
    graph: Graph,
    tasks: Mapping[str, TaskSpec],
    entries: Mapping[str, TaskRunStatus],
) -> dict[str, str]:
    """Substitution values: the run's, then each task's status and results.
    A fanned-out task's result, once all its instances ended, is a JSON
    array of its instances' values (null where one wrote none).
    """
    variables = dict(base)
    for entry in entries.values():
        variables[f"tasks.{entry.name}.status"] = entry.phase
        if tasks[entry.name].matrix is not None:
            if entry.phase in FINISHED_TASK_PHASES and entry.reason not in FANOUT_FAILURES:
                for declared in tasks[entry.name].results or ():
                    values = [
                        next((r.value for r in i.results or () if r.name == declared.name), None)
                        for i in entry.instances or ()
                    ]
                    variables[f"tasks.{entry.name}.results.{declared.name}"] = gathered(values)
            continue
        for result in entry.results or ():
            variables[f"tasks.{entry.name}.results.{result.name}"] = result.value
    main = [entries[name].phase for name in graph.main]
    variables["tasks.status"] = "Failed" if any(p in FAILED_TASK_PHASES for p in main) else "Succeeded"
    return variables


# Why a fanned-out task failed without instances: it has no result to gather.
FANOUT_FAILURES = frozenset({"InvalidMatrix", "TooManyInstances", "MissingResult"})


def ready_units(
    graph: Graph, tasks: Mapping[str, TaskSpec], decided: Decided, parallelism: int | None
) -> list[str]:
    """Tasks and instances to start now, in declaration (then instance)
    order: within each matrix's own parallelism, then the run's, which
    counts running task pods (instances one by one).
    """
    instances = decided.instance_phases()
    plain = set(ready_tasks(graph, decided.phases, instances=instances))
    ready: list[str] = []
    running = 0
    for name in graph.order:
        entry = decided.entries[name]
        matrix = tasks[name].matrix
        if entry.instances and matrix is not None and name in instances:
            active = sum(1 for i in entry.instances if i.phase == "Running")
            running += active
            pending = [unit_key(name, i.index) for i in entry.instances if i.phase == "Pending"]
            if matrix.parallelism is not None:
                pending = pending[: max(0, matrix.parallelism - active)]
            ready.extend(pending)
        elif matrix is None:
            running += entry.phase == "Running"
            if name in plain:
                ready.append(name)
    if parallelism is None:
        return ready
    return ready[: max(0, parallelism - running)]


def startable(
    starts: list[tuple[str, int]],
    tasks: Mapping[str, TaskSpec],
    scope: Callable[[str], Mapping[str, str]],
    observed: Mapping[str, TaskObservation],
    now: str,
) -> tuple[list[tuple[str, int]], dict[str, TaskObservation]]:
    """(the starts whose every reference resolves, observations); the others
    fail with MissingResult.
    """
    result = dict(observed)
    ok = []
    for name, attempt in starts:
        variables = scope(name)
        named = references(tasks[name])
        missing = sorted(ref for ref in named if ref not in variables)
        huge = sorted(
            ref
            for ref in pod_references(tasks[name])
            if ref in variables and len(variables[ref].encode()) > VALUE_MAX
        )
        if not missing and not huge:
            ok.append((name, attempt))
            continue
        if missing:
            refs = ", ".join(f"$({m})" for m in missing)
            reason, message = "MissingResult", f"cannot start: {refs} not written by its task"
        else:
            size = len(variables[huge[0]].encode())
            reason = "ValueTooLarge"
            message = (
                f"cannot start: $({huge[0]}) is {size} bytes, and Linux passes at most {VALUE_MAX} bytes "
                "in one argument or environment variable; write bulk data to the workspace"
            )
        result[name] = TaskObservation(
            "", "Failed", reason=reason, completion_time=now, attempt=attempt, message=message
        )
    return ok, result


# Linux's MAX_ARG_STRLEN (32 pages) less its terminating NUL and room for an
# environment variable's name: the most one substituted value may be.
VALUE_MAX = 131_072 - 1 - 128


def announcements(old: PipelineRunStatus, new: PipelineRunStatus) -> tuple[Announcement, ...]:
    """Events for what changed: tasks that cannot start, failed tasks, and
    the run's outcome.
    """
    before = {t.name: t.phase for t in old.tasks or ()}
    was_waiting = {(split_key(name)[0], why) for name, why, _ in waiting_tasks(old.tasks or [])}
    # One Event per task and reason, not per instance of a fan-out.
    now_waiting: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, why, message in waiting_tasks(new.tasks or []):
        now_waiting.setdefault((split_key(name)[0], why), []).append((name, message))
    events = [
        warning(
            "TaskWaiting",
            f'task "{task}" cannot start: {why}: {units[0][1]}'
            + (f" ({len(units)} instances)" if len(units) > 1 else ""),
        )
        for (task, why), units in now_waiting.items()
        if (task, why) not in was_waiting
    ]
    events += [
        warning("TaskFailed", f'task "{task.name}" failed: {task.message or ""}')
        for task in new.tasks or ()
        if task.phase == "Failed" and before.get(task.name) != "Failed"
    ]
    if new.phase != old.phase and new.phase in FINISHED_RUN_PHASES:
        outcome = next(c for c in new.conditions or () if c.type == "Succeeded")
        succeeded = new.phase == "Succeeded"
        events.append(
            normal("Succeeded", outcome.message) if succeeded else warning("Failed", outcome.message)
        )
    return tuple(events)


def create_failed(task: str, error: str) -> Announcement:
    """What to tell the user when a task's pod could not be created for now."""
    return warning("PodCreateFailed", f'could not create the pod of task "{task}": {error}')


def _changed(old: PipelineRunStatus, new: PipelineRunStatus) -> PipelineRunStatus | None:
    """``new`` when writing it changes what is stored, else None (no write)."""
    return new if new.differs_from(old) else None
