"""The PipelineRun reconciler: read the run and its Jobs, act, write status.

Level-based: each pass starts from the run as stored in the API server and
the Jobs in the cache, never from "what happened last time", so the operator
can be killed at any moment. Two facts make that safe:

* Job names are deterministic (see naming.py): creating a Job that already
  exists is a no-op, so no task runs twice.
* The spec snapshot is written to status *before* the first Job is created,
  and status writes carry the resourceVersion they were computed from, so a
  stale pass fails with a conflict instead of overwriting newer truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from sluice import labels, metrics
from sluice.api.v1alpha1 import (
    ParamValue,
    PipelineRunSpec,
    PipelineRunStatus,
    PipelineSpec,
    TaskRunStatus,
    TaskSpec,
)
from sluice.cache import ChildCache
from sluice.clock import now_rfc3339, parse_time, rfc3339
from sluice.dag import Graph, InvalidPipeline, build_graph, ready_tasks, within_parallelism
from sluice.events import EventRecorder
from sluice.jobs import RunIdentity, render_job, workspace_claim
from sluice.kube import ApiError, KubeClient, jobs_path, pipeline_path, run_path
from sluice.observe import TaskObservation, observe_task, truncate
from sluice.params import bind_params, check_references, references
from sluice.progress import compute_status, condition, failed_status, set_condition, stopped_status
from sluice.results import declared_results
from sluice.retry import next_retry
from sluice.settings import Settings
from sluice.when import evaluate_when

log = logging.getLogger(__name__)

TERMINAL_RUN_PHASES = ("Succeeded", "Failed", "Cancelled")
INLINE = labels.INLINE_PIPELINE
# Job create errors that retrying cannot fix: the task fails with the message.
PERMANENT_CREATE_ERRORS = (400, 422)
# A waiting run is woken by another run finishing; this re-check is a safety net.
CONCURRENCY_RECHECK_SECONDS = 30.0


@dataclass(frozen=True, order=True)
class RunKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, order=True)
class PipelineKey:
    """Queue key for reporting a Pipeline's own status."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"pipeline {self.namespace}/{self.name}"


@dataclass(frozen=True)
class RunSource:
    """What a run executes, resolved once and then frozen in its status."""

    spec: PipelineSpec
    pipeline_name: str
    params: dict[str, str]
    graph: Graph
    reused: list[TaskRunStatus] = field(default_factory=list)
    claim: str | None = None


@dataclass
class Waiters:
    """Runs waiting on something about a Pipeline (for it to exist, for a
    concurrency slot), woken by the event that ends the wait.
    """

    by_pipeline: dict[tuple[str, str], set[RunKey]] = field(default_factory=dict)

    def wait(self, namespace: str, pipeline: str, key: RunKey) -> None:
        self.by_pipeline.setdefault((namespace, pipeline), set()).add(key)

    def release(self, namespace: str, pipeline: str) -> set[RunKey]:
        return self.by_pipeline.pop((namespace, pipeline), set())


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        cache: ChildCache,
        events: EventRecorder,
        settings: Settings,
        clock: Callable[[], str] = now_rfc3339,
    ) -> None:
        self.client = client
        self.cache = cache
        self.events = events
        self.settings = settings
        self.clock = clock
        self.waiters = Waiters()
        self.concurrency_waiters = Waiters()
        self.admission_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def reconcile(self, key: RunKey) -> float | None:
        """One pass over one run; returns seconds until it wants another pass."""
        run = await self.client.get_optional(run_path(key.namespace, key.name))
        if run is None:
            return None
        status = PipelineRunStatus.model_validate(run.get("status") or {})
        if status.phase in TERMINAL_RUN_PHASES and status.completion_time:
            return None
        if status.pipeline_spec is None:
            return await self._start(run, status)
        return await self._advance(run, status)

    # --- first pass: resolve, validate, snapshot ---------------------------------

    async def _start(self, run: dict[str, Any], status: PipelineRunStatus) -> float | None:
        meta = run["metadata"]
        now = self.clock()
        try:
            spec = PipelineRunSpec.model_validate(run.get("spec") or {})
        except ValidationError as error:
            await self._fail(run, status, "InvalidSpec", f"spec is invalid: {_first_error(error)}")
            return None
        source = await self._resolve_source(run, status, spec)
        if not isinstance(source, RunSource):
            return source
        pipeline_spec, pipeline_name, graph = source.spec, source.pipeline_name, source.graph
        snapshot = status.model_copy(
            update={
                "pipeline_name": pipeline_name,
                "pipeline_spec": pipeline_spec,
                "params": [ParamValue(name=k, value=v) for k, v in source.params.items()] or None,
                "observed_generation": meta.get("generation"),
                "start_time": now,
                "tasks": source.reused or None,
                "workspace_claim_name": source.claim,
            }
        )
        snapshot = compute_status(snapshot, graph, {}, now)
        limit = pipeline_spec.max_concurrent_runs
        if limit and pipeline_name != INLINE:
            # One admission at a time per pipeline, so two waiting runs cannot
            # both take the last free slot.
            async with self.admission_locks.setdefault((meta["namespace"], pipeline_name), asyncio.Lock()):
                wait = await self._concurrency_wait(run, status, pipeline_name, limit)
                if wait is not None:
                    return wait
                run = await self._write_status(run, snapshot)
        else:
            run = await self._write_status(run, snapshot)
        verb = f"re-running run {spec.rerun_of.name}:" if spec.rerun_of else "running"
        await self.events.normal(
            run, "Started", f"{verb} {len(graph.order)} tasks of pipeline {pipeline_name}"
        )
        again = await self._advance(run, snapshot)
        # The scheduler records its own runs in order; only record runs made by hand.
        if pipeline_name != INLINE and labels.SCHEDULED_BY not in (meta.get("labels") or {}):
            await self._record_last_run(meta["namespace"], pipeline_name, meta["name"])
        return again

    async def _resolve_source(
        self, run: dict[str, Any], status: PipelineRunStatus, spec: PipelineRunSpec
    ) -> RunSource | float | None:
        """The validated pipeline a run will execute; a float asks to look again
        after that many seconds, None means the run has been failed.
        """
        if spec.rerun_of is not None:
            return await self._rerun_source(run, status, spec.rerun_of.name)
        if spec.pipeline_spec is not None:
            pipeline_spec, pipeline_name = spec.pipeline_spec, INLINE
        elif spec.pipeline_ref is not None:
            pipeline_name = spec.pipeline_ref.name
            fetched = await self._fetch_pipeline(run, status, pipeline_name)
            if not isinstance(fetched, PipelineSpec):
                return fetched
            pipeline_spec = fetched
        else:
            await self._fail(
                run, status, "InvalidSpec", "one of spec.pipelineRef or spec.pipelineSpec is required"
            )
            return None
        if spec.workspace is not None:
            pipeline_spec = pipeline_spec.model_copy(update={"workspace": spec.workspace})
        try:
            graph = build_graph(pipeline_spec)
            check_references(pipeline_spec, graph)
            params = bind_params(pipeline_spec, spec.params)
        except InvalidPipeline as error:
            await self._fail(run, status, error.reason, error.message, pipeline_name)
            return None
        return RunSource(pipeline_spec, pipeline_name, params, graph)

    async def _rerun_source(
        self, run: dict[str, Any], status: PipelineRunStatus, name: str
    ) -> RunSource | None:
        """What a rerun takes from the run it re-runs: the spec snapshot, params,
        the succeeded tasks (reused with their results) and the workspace claim.
        """
        namespace = run["metadata"]["namespace"]
        source = await self.client.get_optional(run_path(namespace, name))
        if source is None:
            await self._fail(run, status, "RerunSourceNotFound", f'run "{name}" (spec.rerunOf) was not found')
            return None
        old = PipelineRunStatus.model_validate(source.get("status") or {})
        if old.phase not in TERMINAL_RUN_PHASES or old.pipeline_spec is None:
            message = f'run "{name}" has not finished; only a finished run can be re-run'
            await self._fail(run, status, "RerunSourceNotFinished", message, old.pipeline_name)
            return None
        reused = [
            task.model_copy(update={"reason": "Reused", "message": f"reused from run {name}"})
            for task in old.tasks or ()
            if task.phase == "Succeeded"
        ]
        params = {param.name: param.value for param in old.params or ()}
        spec = old.pipeline_spec
        return RunSource(
            spec, old.pipeline_name or INLINE, params, build_graph(spec), reused, old.workspace_claim_name
        )

    async def _concurrency_wait(
        self, run: dict[str, Any], status: PipelineRunStatus, pipeline: str, limit: int
    ) -> float | None:
        """None if the run may start now; else mark it waiting and return when to look again."""
        meta = run["metadata"]
        listing = await self.client.request("GET", run_path(meta["namespace"]))

        def pipeline_of(other: dict[str, Any]) -> str | None:
            name: str | None = (other.get("status") or {}).get("pipelineName") or (
                (other.get("spec") or {}).get("pipelineRef") or {}
            ).get("name")
            return name

        mine = (meta.get("creationTimestamp") or "", meta["name"])
        active = ahead = 0
        for other in listing.get("items") or ():
            other_meta, other_status = other["metadata"], other.get("status") or {}
            if other_meta["name"] == meta["name"] or pipeline_of(other) != pipeline:
                continue
            if other_status.get("phase") in TERMINAL_RUN_PHASES:
                continue
            if other_status.get("pipelineSpec") is not None:
                active += 1
            elif (other_meta.get("creationTimestamp") or "", other_meta["name"]) < mine:
                ahead += 1
        if active + ahead < limit:
            return None
        message = f'waiting: {active} of {limit} allowed runs of pipeline "{pipeline}" are active'
        if ahead:
            message += f", {ahead} waiting run(s) first"
        await self._mark_waiting(run, status, pipeline, "WaitingForConcurrency", message)
        self.concurrency_waiters.wait(meta["namespace"], pipeline, RunKey(meta["namespace"], meta["name"]))
        return CONCURRENCY_RECHECK_SECONDS

    async def _mark_waiting(
        self, run: dict[str, Any], status: PipelineRunStatus, pipeline: str, reason: str, message: str
    ) -> None:
        """Show a run that cannot start yet as Pending, with why in its condition."""
        waiting = status.model_copy(
            update={
                "phase": "Pending",
                "pipeline_name": pipeline,
                "conditions": set_condition(
                    status.conditions, condition("Succeeded", "Unknown", reason, message, self.clock())
                ),
            }
        )
        await self._write_if_changed(run, waiting)

    async def _record_last_run(self, namespace: str, pipeline: str, run: str) -> None:
        """Show the newest run in `kubectl get pipelines`; best effort."""
        try:
            await self.client.merge_patch(
                pipeline_path(namespace, pipeline, "status"), {"status": {"lastRunName": run}}
            )
        except ApiError as error:
            log.info("could not record last run on pipeline %s/%s: %s", namespace, pipeline, error)

    async def _fetch_pipeline(
        self, run: dict[str, Any], status: PipelineRunStatus, name: str
    ) -> PipelineSpec | float | None:
        """The referenced Pipeline's spec; a float asks to retry after that
        many seconds (the Pipeline may be applied just after the run).
        """
        meta = run["metadata"]
        pipeline = await self.client.get_optional(pipeline_path(meta["namespace"], name))
        if pipeline is None:
            waited = (parse_time(self.clock()) - parse_time(meta["creationTimestamp"])).total_seconds()
            message = f'pipeline "{name}" not found in namespace "{meta["namespace"]}"'
            if waited < self.settings.pipeline_grace_seconds:
                self.waiters.wait(meta["namespace"], name, RunKey(meta["namespace"], meta["name"]))
                await self._mark_waiting(run, status, name, "PipelineNotFound", message + "; waiting for it")
                return self.settings.pipeline_grace_seconds - waited + 0.05
            await self._fail(run, status, "PipelineNotFound", message, name)
            return None
        try:
            return PipelineSpec.model_validate(pipeline.get("spec") or {})
        except ValidationError as error:
            await self._fail(
                run, status, "InvalidPipeline", f'pipeline "{name}": {_first_error(error)}', name
            )
            return None

    async def _fail(
        self,
        run: dict[str, Any],
        status: PipelineRunStatus,
        reason: str,
        message: str,
        pipeline_name: str | None = None,
    ) -> None:
        failed = failed_status(status, reason, message, self.clock())
        metrics.RUNS_FINISHED.labels("Failed").inc()
        if pipeline_name:
            failed.pipeline_name = pipeline_name
        run = await self._write_status(run, failed)
        await self.events.warning(run, reason, message)

    # --- every pass: observe, start what is ready, report ----------------------------

    def _observe(self, uid: str, graph: Graph) -> dict[str, TaskObservation]:
        """Each task's latest attempt, from the cache (and Jobs just created)."""
        latest: dict[str, tuple[int, dict[str, Any]]] = {}
        for job in self.cache.jobs_of(uid):
            job_labels = job["metadata"]["labels"]
            task = job_labels.get(labels.TASK)
            attempt = int(job_labels.get(labels.ATTEMPT) or 0)
            if task in graph.deps and (task not in latest or attempt > latest[task][0]):
                latest[task] = (attempt, job)
        observed = {
            task: observe_task(job, self.cache.pods_of_job(uid, job["metadata"]["name"]), attempt)
            for task, (attempt, job) in latest.items()
        }
        for job_name, (task, attempt) in self.cache.expected_jobs(uid).items():
            if task not in observed or observed[task].attempt < attempt:
                observed[task] = TaskObservation(job_name, "Running", attempt=attempt)
        return observed

    def _stop_reason(
        self, run: dict[str, Any], status: PipelineRunStatus, now: str
    ) -> tuple[str, str, str] | None:
        """(phase, reason, message) when the run must stop now: cancelled by
        the user, or past its timeout.
        """
        spec = run.get("spec") or {}
        if spec.get("cancelled"):
            return "Cancelled", "Cancelled", "the run was cancelled (spec.cancelled)"
        timeout = spec.get("timeoutSeconds")
        if timeout and status.start_time:
            elapsed = (parse_time(now) - parse_time(status.start_time)).total_seconds()
            if elapsed >= timeout:
                return "Failed", "Timeout", f"the run exceeded its timeout of {timeout}s"
        return None

    def _timeout_wake(self, run: dict[str, Any], status: PipelineRunStatus, now: str) -> float | None:
        timeout = float((run.get("spec") or {}).get("timeoutSeconds") or 0)
        if not timeout or not status.start_time:
            return None
        elapsed = (parse_time(now) - parse_time(status.start_time)).total_seconds()
        return max(0.0, timeout - elapsed) + 0.05

    async def _stop(
        self,
        run: dict[str, Any],
        status: PipelineRunStatus,
        graph: Graph,
        observed: dict[str, TaskObservation],
        stop: tuple[str, str, str],
        now: str,
    ) -> None:
        """Delete the run's unfinished Jobs (their pods go with them), then end it."""
        meta = run["metadata"]
        active = [obs.job_name for obs in observed.values() if obs.phase == "Running"]
        await asyncio.gather(
            *(self.client.delete(jobs_path(meta["namespace"], name), missing_ok=True) for name in active)
        )
        phase, reason, message = stop
        final = stopped_status(status, graph, observed, phase, reason, message, now)
        metrics.RUNS_FINISHED.labels(phase).inc()
        run = await self._write_status(run, final)
        await self.events.warning(run, reason, f"{message}; stopped {len(active)} running task(s)")

    async def _advance(self, run: dict[str, Any], status: PipelineRunStatus) -> float | None:
        """Start what is ready, schedule retries, write status; returns when to look again."""
        meta = run["metadata"]
        assert status.pipeline_spec is not None
        spec = status.pipeline_spec
        graph = build_graph(spec)
        tasks = {task.name: task for task in [*spec.tasks, *(spec.finally_ or ())]}
        identity = RunIdentity(meta["namespace"], meta["name"], meta["uid"], status.pipeline_name or INLINE)
        observed = self._observe(identity.uid, graph)
        now = self.clock()
        stop = self._stop_reason(run, status, now)
        if stop is not None:
            await self._stop(run, status, graph, observed, stop, now)
            return None
        to_retry, wakes = self._plan_retries(tasks, observed, now)
        self._collect_results(tasks, observed)
        base = self._variables(identity, status, meta)
        skipped, variables, phases = self._decide_when(status, graph, tasks, observed, base, now)
        to_start = within_parallelism(ready_tasks(graph, phases), phases, spec.parallelism)
        starts = self._startable([(name, 0) for name in to_start] + to_retry, tasks, variables, observed, now)
        if starts and not await self._ensure_workspace(run, identity, status):
            return None
        jobs = [
            (
                name,
                attempt,
                render_job(identity, spec, tasks[name], variables, attempt, status.workspace_claim_name),
            )
            for name, attempt in starts
        ]
        failures = await self._create_jobs(identity, jobs, observed)
        new_status = compute_status(status, graph, observed, now, skipped)
        if new_status.to_api() != status.to_api():
            run = await self._write_status(run, new_status)
            await self._announce(run, status, new_status)
        if failures:
            # Quota, rate limits, a webhook down: worth retrying (the worker backs
            # off), and worth telling the user, who would otherwise see a task
            # Pending with no reason.
            metrics.JOB_CREATE_ERRORS.inc(len(failures))
            name, error = failures[0]
            await self.events.warning(
                run, "JobCreateFailed", f'could not create the Job of task "{name}": {error}'
            )
            raise error
        if new_status.phase in TERMINAL_RUN_PHASES:
            return None
        timeout_wake = self._timeout_wake(run, status, now)
        if timeout_wake is not None:
            wakes.append(timeout_wake)
        return min(wakes) + 0.05 if wakes else None

    @staticmethod
    def _plan_retries(
        tasks: dict[str, TaskSpec], observed: dict[str, TaskObservation], now: str
    ) -> tuple[list[tuple[str, int]], list[float]]:
        """(retries due now, seconds until the others). A failed attempt with
        retries left keeps its task Running ("Retrying") until the next one.
        """
        due: list[tuple[str, int]] = []
        wakes: list[float] = []
        for name, obs in list(observed.items()):
            retry = next_retry(tasks[name].retries, obs, parse_time(now))
            if retry is None:
                continue
            wait = (retry.due - parse_time(now)).total_seconds()
            if wait <= 0:
                due.append((name, retry.attempt))
            else:
                wakes.append(wait)
            failure = obs.message or obs.reason
            message = f"attempt {obs.attempt + 1} failed: {failure}; next attempt at {rfc3339(retry.due)}"
            observed[name] = replace(obs, phase="Running", reason="Retrying", message=truncate(message))
        return due, wakes

    @staticmethod
    def _startable(
        starts: list[tuple[str, int]],
        tasks: dict[str, TaskSpec],
        variables: dict[str, str],
        observed: dict[str, TaskObservation],
        now: str,
    ) -> list[tuple[str, int]]:
        """The starts whose every reference resolves; the others fail with MissingResult."""
        result = []
        for name, attempt in starts:
            missing = sorted(references(tasks[name]) - set(variables))
            if not missing:
                result.append((name, attempt))
                continue
            refs = ", ".join(f"$({m})" for m in missing)
            observed[name] = TaskObservation(
                "",
                "Failed",
                reason="MissingResult",
                completion_time=now,
                attempt=attempt,
                message=f"cannot start: {refs} not written by its task",
            )
        return result

    async def _create_jobs(
        self,
        identity: RunIdentity,
        jobs: list[tuple[str, int, dict[str, Any]]],
        observed: dict[str, TaskObservation],
    ) -> list[tuple[str, BaseException]]:
        """Create Jobs concurrently; record what was created, return what failed."""
        results = await asyncio.gather(
            *(self._create_job(identity, job, name, attempt) for name, attempt, job in jobs),
            return_exceptions=True,
        )
        failures: list[tuple[str, BaseException]] = []
        for (name, _, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                failures.append((name, result))
            else:
                observed[name] = result
        return failures

    @staticmethod
    def _collect_results(tasks: dict[str, TaskSpec], observed: dict[str, TaskObservation]) -> None:
        """Parse succeeded tasks' results; a broken size limit fails the task."""
        for name, obs in list(observed.items()):
            if obs.phase != "Succeeded" or obs.output is None:
                continue
            values, error = declared_results(tasks[name], obs.output)
            if error is not None:
                observed[name] = replace(obs, phase="Failed", reason="ResultTooLarge", message=error)
            else:
                observed[name] = replace(obs, results=tuple(sorted(values.items())))

    @staticmethod
    def _decide_when(
        status: PipelineRunStatus,
        graph: Graph,
        tasks: dict[str, TaskSpec],
        observed: dict[str, TaskObservation],
        base: dict[str, str],
        now: str,
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """(tasks skipped by `when` -> why, variables, phases), to a fixpoint:
        a skip can make further tasks ready, whose `when` is then evaluated.
        """
        skipped: dict[str, str] = {}
        while True:
            preview = compute_status(status, graph, observed, now, skipped)
            phases: dict[str, str] = {t.name: t.phase for t in preview.tasks or ()}
            variables = dict(base)
            for entry in preview.tasks or ():
                variables[f"tasks.{entry.name}.status"] = entry.phase
                for result in entry.results or ():
                    variables[f"tasks.{entry.name}.results.{result.name}"] = result.value
            main = [phases[name] for name in graph.main]
            variables["tasks.status"] = (
                "Failed" if any(p in ("Failed", "Cancelled") for p in main) else "Succeeded"
            )
            newly = {
                name: why
                for name in ready_tasks(graph, phases)
                if name not in skipped and (why := evaluate_when(tasks[name].when, variables)) is not None
            }
            if not newly:
                return skipped, variables, phases
            skipped.update(newly)

    async def _ensure_workspace(
        self, run: dict[str, Any], identity: RunIdentity, status: PipelineRunStatus
    ) -> bool:
        """Create the run's workspace claim before its first Job; False if the
        run failed because the claim was rejected.
        """
        assert status.pipeline_spec is not None
        claim = workspace_claim(identity, status.pipeline_spec)
        if claim is None or status.workspace_claim_name:
            return True
        try:
            await self.client.create(f"/api/v1/namespaces/{identity.namespace}/persistentvolumeclaims", claim)
        except ApiError as error:
            if error.status in PERMANENT_CREATE_ERRORS:
                await self._fail(
                    run, status, "InvalidWorkspace", f"workspace claim rejected: {error.message}"
                )
                return False
            if not error.already_exists:
                raise
        status.workspace_claim_name = claim["metadata"]["name"]
        return True

    async def _create_job(
        self, run: RunIdentity, job: dict[str, Any], task: str, attempt: int = 0
    ) -> TaskObservation:
        name = job["metadata"]["name"]
        try:
            await self.client.create(jobs_path(run.namespace), job)
        except ApiError as error:
            if error.already_exists:
                return TaskObservation(name, "Running", attempt=attempt)
            if error.status in PERMANENT_CREATE_ERRORS:
                return TaskObservation(
                    name,
                    "Failed",
                    reason="JobRejected",
                    message=truncate(f"the API server rejected the task's Job: {error.message}"),
                    completion_time=self.clock(),
                )
            raise
        self.cache.expect(run.uid, name, task, attempt)
        metrics.JOBS_CREATED.inc()
        return TaskObservation(name, "Running", attempt=attempt)

    @staticmethod
    def _variables(run: RunIdentity, status: PipelineRunStatus, meta: dict[str, Any]) -> dict[str, str]:
        """Substitution values; a run started by hand is "scheduled" at its creation."""
        annotations = meta.get("annotations") or {}
        created = meta.get("creationTimestamp") or ""
        variables = {f"params.{p.name}": p.value for p in status.params or ()}
        variables.update(
            {
                "context.pipelineRun.name": run.name,
                "context.pipelineRun.namespace": run.namespace,
                "context.pipelineRun.uid": run.uid,
                "context.pipeline.name": run.pipeline_name,
                "context.scheduledTime": annotations.get(labels.SCHEDULED_TIME) or created,
                "context.scheduledDate": annotations.get(labels.SCHEDULED_DATE) or created[:10],
            }
        )
        return variables

    async def _announce(self, run: dict[str, Any], old: PipelineRunStatus, new: PipelineRunStatus) -> None:
        """Events for what changed: failed tasks, and the run's outcome."""
        before = {t.name: t.phase for t in old.tasks or ()}
        for task in new.tasks or ():
            if task.phase == "Failed" and before.get(task.name) != "Failed":
                await self.events.warning(
                    run, "TaskFailed", f'task "{task.name}" failed: {task.message or ""}'
                )
        if new.phase != old.phase and new.phase in TERMINAL_RUN_PHASES:
            metrics.RUNS_FINISHED.labels(new.phase).inc()
            condition = next(c for c in new.conditions or () if c.type == "Succeeded")
            if new.phase == "Succeeded":
                await self.events.normal(run, "Succeeded", condition.message)
            else:
                await self.events.warning(run, "Failed", condition.message)

    # --- status I/O ---------------------------------------------------------------------

    async def _write_status(self, run: dict[str, Any], status: PipelineRunStatus) -> dict[str, Any]:
        """Write the whole status, conditional on the version it was computed from."""
        meta = run["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status.to_api()}
        return await self.client.merge_patch(run_path(meta["namespace"], meta["name"], "status"), body)

    async def _write_if_changed(self, run: dict[str, Any], status: PipelineRunStatus) -> dict[str, Any]:
        if status.to_api() == PipelineRunStatus.model_validate(run.get("status") or {}).to_api():
            return run
        return await self._write_status(run, status)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"
