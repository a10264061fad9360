"""The PipelineRun reconciler: observe → plan → act → write → announce.

Level-based: each pass starts from the run as stored in the API server and
the pods in the cache, never from "what happened last time", so the operator
can be killed at any moment. Three facts make that safe:

* Pod names are deterministic (see engine/naming.py): creating a pod that
  already exists is a no-op, so no task attempt runs twice.
* The spec snapshot is written to status *before* the first pod is created
  (the plan's ``replan``), and status writes carry the resourceVersion they
  were computed from, so a stale pass fails with a conflict instead of
  overwriting newer truth.
* Each task pod holds a finalizer that is released only after a status
  write recording its outcome succeeded, so a pod deleted early (by hand, by
  eviction, by the pod GC) still tells its outcome to the next pass.

Every decision is made by ``engine.run_plan.plan_run``; this module only
reads, carries the plan out and reports. When carrying it out changes the
facts (a create refused for good, or for now), the planned status is not
written: the pass observes again and plans again, so the status written is
always one the plan computed from what is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from sluice import faults, metrics
from sluice.api.meta import resource_version
from sluice.api.v1alpha1 import FINISHED_RUN_PHASES, Condition, PipelineRunSpec, PipelineRunStatus
from sluice.cache import ChildCache
from sluice.engine.admission import PeerRun
from sluice.engine.announce import warning
from sluice.engine.assets import AssetUpdate
from sluice.engine.clock import now_rfc3339
from sluice.engine.naming import label_value
from sluice.engine.observe import RefusedCreate, TaskObservation, TrackedPod, observe_tasks, tracked_pod
from sluice.engine.render import TRACKING_FINALIZER
from sluice.engine.run_plan import (
    PodStart,
    RunFacts,
    RunPlan,
    admission_scope,
    create_failed,
    plan_gone,
    plan_run,
    unseen_pods,
)
from sluice.engine.run_source import Fetched, SourceRef, source_to_fetch, validation_message
from sluice.engine.run_status import status_rejected_patch
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient, claims_path, pipeline_path, pods_path, run_path
from sluice.reconcilers.asset_writer import AssetWriter, without_records
from sluice.reconcilers.keys import OwnWrites, RunKey, Waiters
from sluice.reconcilers.last_run import LastRunRecorder
from sluice.reconcilers.peers import PeerIndex
from sluice.reconcilers.refusals import clear_blocked, refusal_of, show_refusal
from sluice.settings import Settings

log = logging.getLogger(__name__)


# Create errors that retrying cannot fix: the object is refused for good.
PERMANENT_CREATE_ERRORS = (400, 422)
# Rounds of observe → plan → act in one pass: the snapshot, then the first
# tasks, then again after each create that did not go as planned. More
# means the facts keep changing under the pass; it looks again shortly.
MAX_ROUNDS = 6
DELETED_REMEMBERED = 10_000
RETRY_SOON_SECONDS = 0.05


@dataclass
class ActOutcome:
    """How carrying out a plan's creates went, where it differed from the plan."""

    refused: bool = False  # something was refused for good (recorded in the cache)
    # Asset updates refused for good: not listed as recorded; the pass ends with the refusal.
    assets_refused: list[tuple[AssetUpdate, ApiError]] = field(default_factory=list)
    # (task, error) for each pod that could not be created for now.
    errors: list[tuple[str, BaseException]] = field(default_factory=list)

    @property
    def held(self) -> frozenset[str]:
        """Tasks to keep Pending this pass: their create may succeed later."""
        return frozenset(task for task, _ in self.errors)

    @property
    def as_planned(self) -> bool:
        return not self.refused and not self.errors


class RunReconciler:
    def __init__(
        self,
        client: KubeClient,
        cache: ChildCache,
        events: EventRecorder,
        settings: Settings,
        pipeline_writes: OwnWrites | None = None,
        clock: Callable[[], str] = now_rfc3339,
    ) -> None:
        self.client = client
        self.cache = cache
        self.events = events
        self.settings = settings
        self.clock = clock
        self.pipeline_writes = pipeline_writes or OwnWrites()
        # Runs waiting for their Pipeline to exist, and for a concurrency slot.
        self.waiting_for_pipeline = Waiters()
        self.waiting_for_slot = Waiters()
        self.admission_locks: dict[tuple[str, str], asyncio.Lock] = {}
        # The resourceVersion of the last status this reconciler wrote, per run.
        self.run_writes = OwnWrites()
        self.peers = PeerIndex()
        self.last_runs = LastRunRecorder(client, self.pipeline_writes)
        self.assets = AssetWriter(client)
        # The newest version of every unfinished run (see observe_run).
        self.live: dict[RunKey, dict[str, Any]] = {}
        # UIDs of runs seen deleted, newest last (bounded).
        self.deleted: dict[str, None] = {}
        # The last parsed (status, spec, spec error) per run, with its resourceVersion.
        self.parsed: dict[
            RunKey, tuple[str, tuple[PipelineRunStatus, PipelineRunSpec | None, str | None]]
        ] = {}

    def wrote(self, key: RunKey, version: str) -> bool:
        """Whether this version of the run is the one our last status write made."""
        return self.run_writes.ours(key, version)

    def forget(self, key: RunKey, uid: str = "") -> None:
        """The run was deleted: drop what this reconciler kept about it, and
        remember its UID, so a write of ours answered after the deletion
        was seen cannot bring it back into ``live`` or the peer index.
        """
        if uid:
            self.deleted[uid] = None
            while len(self.deleted) > DELETED_REMEMBERED:
                del self.deleted[next(iter(self.deleted))]
        self.run_writes.forget(key)
        self.parsed.pop(key, None)
        self.live.pop(key, None)
        self.peers.forget(key.namespace, key.name)
        self.waiting_for_pipeline.forget(key)
        self.waiting_for_slot.forget(key)

    def observe_run(self, obj: dict[str, Any]) -> None:
        """Keep the newest version of each unfinished run (from the watch and
        from our own writes), so a pass needs no GET; a stale copy only costs
        a conflict on the status write, which is conditional.
        """
        meta = obj["metadata"]
        key = RunKey(meta["namespace"], meta["name"])
        status = obj.get("status") or {}
        finished = status.get("phase") in FINISHED_RUN_PHASES and status.get("completionTime")
        if finished and not meta.get("deletionTimestamp"):
            # A finished run is read afresh on its rare passes; its memory goes.
            self.live.pop(key, None)
            self.parsed.pop(key, None)
            return
        held = self.live.get(key)
        if held is None or resource_version(held) <= resource_version(obj):
            self.live[key] = obj

    def _wrote(self, key: RunKey, written: dict[str, Any]) -> bool:
        """Take in a run as one of our writes returned it; False when the run
        was seen deleted meanwhile (the write raced its deletion), which
        must not bring it back into ``live`` or the peer index.
        """
        if written["metadata"].get("uid") in self.deleted:
            return False
        self.run_writes.note(key, written)
        self.peers.observe(written)
        self.observe_run(written)
        return True

    async def reconcile(self, key: RunKey) -> float | None:
        """One pass over one run; returns seconds until it wants another pass."""
        run = self.live.get(key) or await self.client.get_optional(run_path(key.namespace, key.name))
        if run is None:
            # Its pods are being garbage-collected: nothing is left to record.
            uids = self.cache.run_uids(key.namespace, label_value(key.name))
            gone = [pod for uid in uids for pod in self._tracked(uid)]
            await self._release(key.namespace, plan_gone(tuple(gone)))
            return None
        held: frozenset[str] = frozenset()
        create_errors: list[tuple[str, BaseException]] = []
        last_run_of: str | None = None
        asset_refusal: ApiError | None = None
        wake: float | None = RETRY_SOON_SECONDS
        for _ in range(MAX_ROUNDS):
            facts = await self._observe(run, held)
            scope = admission_scope(facts)
            # One admission at a time per pipeline, so two waiting runs
            # cannot both take the last free slot.
            async with self._admission_lock(facts.namespace, scope):
                if scope is not None:
                    facts = replace(facts, peers=await self._peers(facts.namespace))
                plan = plan_run(facts)
                self._register_waits(key, plan)
                outcome = await self._act(facts, plan)
                if not outcome.as_planned:
                    held = held | outcome.held
                    create_errors += outcome.errors
                    continue
                if outcome.assets_refused:
                    plan = replace(plan, status=without_records(plan.status, outcome.assets_refused))
                    asset_refusal = outcome.assets_refused[0][1]
                run = await self._write_planned(key, run, plan)
            # Events first: they only come from a status change, so a failed
            # release (retried by the next pass) must not lose them.
            await self._announce(run, plan)
            await self._release(key.namespace, plan.release)
            if plan.delete_run:
                log.info("run %s: its time to live after finishing is over; deleting it", key)
                await self.client.delete(run_path(key.namespace, key.name), missing_ok=True)
                return None
            last_run_of = plan.record_last_run or last_run_of
            if not plan.replan:
                wake = plan.wake_after
                break
        else:
            # Refusals are remembered in the cache, so the next pass converges.
            log.warning("run %s: the facts kept changing during one pass; looking again", key)
        if last_run_of is not None:
            # After the run's first pods exist, and not awaited (see last_run.py).
            self.last_runs.record(key.namespace, last_run_of, key.name)
        if create_errors:
            # Quota, rate limits, a webhook down: worth retrying (the worker
            # backs off), and worth telling the user, who would otherwise see
            # a task Pending with no reason.
            metrics.POD_CREATE_ERRORS.inc(len(create_errors))
            task, error = create_errors[0]
            await self.events.announce(run, create_failed(task, str(error)))
            raise error
        if asset_refusal is not None:
            # The run went on; the refusal shows on it (Blocked) and the
            # update is tried again, with backoff, until it is recorded.
            raise asset_refusal
        # Every call of the pass succeeded: a refusal shown earlier is over.
        written = await clear_blocked(
            self.client, run, run_path(key.namespace, key.name, "status"), self.clock()
        )
        if written is not None:
            self._wrote(key, written)
        return wake

    # --- observe ----------------------------------------------------------------------

    async def _observe(self, run: dict[str, Any], held: frozenset[str]) -> RunFacts:
        """The facts of one round: the run as stored and its tracked pods, and
        then either what a run that has not started names (read afresh: it
        may change meanwhile) or each task's latest attempt from the cache.
        """
        meta = run["metadata"]
        status, spec, spec_error = self._parse(run)
        facts = RunFacts(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            created=meta.get("creationTimestamp") or "",
            now=self.clock(),
            status=status,
            spec=spec,
            pipeline_grace_seconds=self.settings.pipeline_grace_seconds,
            spec_error=spec_error,
            generation=meta.get("generation"),
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
            held=held,
            tracked=self._tracked(meta["uid"]),
            default_ttl_seconds=self.settings.run_ttl_seconds,
            deleting=bool(meta.get("deletionTimestamp")),
            # Scans the namespace's runs: only asked once a run has finished.
            needed_by_rerun=status.finished and self.peers.rerun_pending(meta["namespace"], meta["name"]),
            orphans=self._orphans(meta["namespace"], meta["name"], meta["uid"]),
        )
        if status.finished:
            return facts
        if status.pipeline_spec is None:
            target = source_to_fetch(spec) if spec is not None else None
            return replace(facts, source=await self._fetch(facts.namespace, target)) if target else facts
        pipeline = status.pipeline_spec
        names = {task.name for task in [*pipeline.tasks, *(pipeline.finally_ or ())]}
        refusals = self.cache.refusals(facts.uid)

        def observe() -> dict[str, TaskObservation]:
            pods = self.cache.pods_of(facts.uid, facts.name)
            return observe_tasks(
                names,
                pods,
                facts.now,
                self.cache.created_pods(facts.uid),
                refusals,
                self.settings.pending_deadline_seconds,
            )

        observed = observe()
        unseen = unseen_pods(status, observed)
        if unseen:
            # Rare: a pod the status names that the watch has not shown. Only
            # the API server may say it is gone (then the attempt is lost).
            for name in unseen:
                pod = await self.client.get_optional(pods_path(facts.namespace, name))
                if pod is not None:
                    self.cache.upsert_pod(pod)
            observed = observe()
        return replace(
            facts,
            tasks=observed,
            claim_refused=next((r.message for r in refusals if r.task is None), None),
        )

    def _parse(self, run: dict[str, Any]) -> tuple[PipelineRunStatus, PipelineRunSpec | None, str | None]:
        """The run's status and spec as models, parsed once per version of the
        run: a 5,000-task snapshot is not validated again on every pass.
        """
        meta = run["metadata"]
        key = RunKey(meta["namespace"], meta["name"])
        held = self.parsed.get(key)
        if held is not None and held[0] == meta["resourceVersion"]:
            return held[1]
        status = PipelineRunStatus.model_validate(run.get("status") or {})
        spec: PipelineRunSpec | None = None
        spec_error = None
        try:
            spec = PipelineRunSpec.model_validate(run.get("spec") or {})
        except ValidationError as error:
            spec_error = validation_message(error)
        self.parsed[key] = (meta["resourceVersion"], (status, spec, spec_error))
        return status, spec, spec_error

    def _tracked(self, uid: str) -> tuple[TrackedPod, ...]:
        pods = (tracked_pod(pod, TRACKING_FINALIZER) for pod in self.cache.pods_of(uid))
        return tuple(pod for pod in pods if pod is not None)

    def _orphans(self, namespace: str, name: str, uid: str) -> tuple[str, ...]:
        """Tracked pods of an earlier run that had this name."""
        others = self.cache.run_uids(namespace, label_value(name)) - {uid}
        return plan_gone(tuple(pod for other in others for pod in self._tracked(other)))

    async def _fetch(self, namespace: str, target: SourceRef) -> Fetched:
        path = (
            run_path(namespace, target.name)
            if target.kind == "run"
            else pipeline_path(namespace, target.name)
        )
        return Fetched(target.name, await self.client.get_optional(path))

    async def _peers(self, namespace: str) -> tuple[PeerRun, ...]:
        return self.peers.of(namespace)

    def _admission_lock(
        self, namespace: str, scope: tuple[str, int] | None
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        if scope is None:
            return contextlib.nullcontext()
        return self.admission_locks.setdefault((namespace, scope[0]), asyncio.Lock())

    # --- act --------------------------------------------------------------------------

    def _register_waits(self, key: RunKey, plan: RunPlan) -> None:
        """Before acting, so the event that ends the wait cannot slip past."""
        if plan.wait_for is None:
            return
        on, pipeline = plan.wait_for
        waiters = {"pipeline": self.waiting_for_pipeline, "concurrency": self.waiting_for_slot}[on]
        waiters.wait(key.namespace, pipeline, key)

    async def _act(self, facts: RunFacts, plan: RunPlan) -> ActOutcome:
        """Delete, record asset updates, then create the claim, then the pods (concurrently)."""
        outcome = ActOutcome()
        if plan.stops:
            await asyncio.gather(
                *(
                    self.client.delete(pods_path(facts.namespace, name), missing_ok=True)
                    for name in plan.stops
                )
            )
        if plan.asset_updates:
            outcome.assets_refused = await self.assets.record(facts.namespace, plan.asset_updates)
        if plan.claim is not None and not await self._create_claim(facts, plan.claim):
            outcome.refused = True
            return outcome
        results = await asyncio.gather(
            *(self._create_pod(facts, start) for start in plan.starts), return_exceptions=True
        )
        for start, result in zip(plan.starts, results, strict=True):
            if isinstance(result, BaseException):
                outcome.errors.append((start.task, result))
            elif not result:
                outcome.refused = True
        return outcome

    async def _create_claim(self, facts: RunFacts, claim: dict[str, Any]) -> bool:
        """Create the run's workspace claim; False if it was refused for good."""
        name = claim["metadata"]["name"]
        try:
            await self.client.create(claims_path(facts.namespace), claim)
        except ApiError as error:
            if error.status in PERMANENT_CREATE_ERRORS:
                self.cache.refuse(facts.uid, RefusedCreate(name, error.message, self.clock()))
                return False
            if not error.already_exists:
                raise
            # Ours from an earlier pass, or a claim someone else made under
            # its name: mounting that would hand the run their volume.
            existing = await self.client.get_optional(f"{claims_path(facts.namespace)}/{name}")
            if existing is None:
                # Gone between the create and the read: the next pass creates it.
                path = f"{claims_path(facts.namespace)}/{name}"
                raise ApiError(
                    409, "Conflict", "the claim was deleted while being created", "POST", path
                ) from error
            if not self.cache.controlled_by(existing, facts.uid, facts.name):
                message = (
                    f"a PersistentVolumeClaim named {name} already exists and this run does not control "
                    "it (someone else created it), so it was not mounted: delete that claim and rerun"
                )
                self.cache.refuse(facts.uid, RefusedCreate(name, message, self.clock()))
                return False
        return True

    async def _create_pod(self, facts: RunFacts, start: PodStart) -> bool:
        """Create one attempt's pod; False if it was refused for good."""
        self.cache.expect(facts.uid, start.name, start.task, start.attempt)
        try:
            await self.client.create(pods_path(facts.namespace), start.pod)
        except ApiError as error:
            if error.already_exists:
                return await self._adopt_existing(facts, start)
            self.cache.unexpect(facts.uid, start.name)
            if error.status in PERMANENT_CREATE_ERRORS:
                refusal = RefusedCreate(start.name, error.message, self.clock(), start.task, start.attempt)
                self.cache.refuse(facts.uid, refusal)
                return False
            raise
        except BaseException:
            self.cache.unexpect(facts.uid, start.name)
            raise
        metrics.PODS_CREATED.inc()
        return True

    async def _adopt_existing(self, facts: RunFacts, start: PodStart) -> bool:
        """The attempt's name is taken. Our own earlier create (a pass repeated
        after a restart or a lost answer) is the attempt; a pod this run does
        not control is not, and taking it for one would let anyone who may
        create pods decide a task's outcome and results: the task fails.
        """
        try:
            existing = await self.client.get_optional(pods_path(facts.namespace, start.name))
        except BaseException:
            self.cache.unexpect(facts.uid, start.name)
            raise
        if existing is None:
            # Gone between the create and the read: the next pass creates it.
            self.cache.unexpect(facts.uid, start.name)
            path = pods_path(facts.namespace, start.name)
            raise ApiError(409, "Conflict", "the pod was deleted while being created", "POST", path)
        if self.cache.controlled_by(existing, facts.uid, facts.name):
            self.cache.upsert_pod(existing)
            return True
        self.cache.unexpect(facts.uid, start.name)
        refusal = RefusedCreate(start.name, "name taken", self.clock(), start.task, start.attempt, taken=True)
        self.cache.refuse(facts.uid, refusal)
        return False

    async def _release(self, namespace: str, pods: tuple[str, ...]) -> None:
        """Drop the tracking finalizer of pods whose outcome is recorded."""
        if pods:
            await asyncio.gather(
                *(
                    self.client.remove_finalizer(pods_path(namespace, name), TRACKING_FINALIZER)
                    for name in pods
                )
            )

    # --- write and announce ----------------------------------------------------------

    async def _write_planned(self, key: RunKey, run: dict[str, Any], plan: RunPlan) -> dict[str, Any]:
        """Write the plan's status (after its creates and asset updates)."""
        if plan.asset_updates:
            faults.crash_point(faults.ASSET_RECORDED)
        try:
            run = await self._write_status(run, plan.status)
        except ApiError as refused:
            if refused.not_found:
                # Deleted under this pass. Its DELETED event may have been
                # handled before our own earlier write's answer put the run
                # back in ``live``: drop that copy, so the retry reads the
                # truth (gone) and releases its pods.
                self.live.pop(key, None)
                self.parsed.pop(key, None)
            raise
        if plan.asset_updates:
            faults.crash_point(faults.RUN_STATUS_WRITTEN)
        return run

    async def _write_status(self, run: dict[str, Any], status: PipelineRunStatus | None) -> dict[str, Any]:
        """Write the whole status, conditional on the version it was computed from."""
        if status is None:
            return run
        meta = run["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status.to_api()}
        written = await self.client.merge_patch(run_path(meta["namespace"], meta["name"], "status"), body)
        key = RunKey(meta["namespace"], meta["name"])
        version = written["metadata"]["resourceVersion"]
        if not self._wrote(key, written):
            return written
        held = self.parsed.get(key)
        unchanged = held is not None and held[0] == meta["resourceVersion"]
        if held is not None and unchanged and written.get("status") == body["status"]:
            # What is stored is exactly what we wrote: no need to parse it back
            # (comparing dicts costs far less than validating a 5,000-task status).
            self.parsed[key] = (version, (status, held[1][1], held[1][2]))
        return written

    async def show_refusal(self, key: RunKey, error: ApiError) -> None:
        """A call of this run's pass was refused for good: say so on the run.
        A refused status write of its own ends the run (StatusRejected):
        without a status it can record nothing, and retrying would not help.
        """
        run = self.live.get(key) or await self.client.get_optional(run_path(key.namespace, key.name))
        if run is None:
            return
        path = run_path(key.namespace, key.name, "status")
        if error.resource == "pipelineruns/status" and error.status != 403:
            conditions = [
                Condition.model_validate(c) for c in (run.get("status") or {}).get("conditions") or ()
            ]
            patch = status_rejected_patch(conditions, error.message, self.clock())
            written: dict[str, Any] | None = await self.client.merge_patch(path, patch)
            log.warning("run %s: its status was refused, so it ends: %s", key, error)
            ended = next(c for c in patch["status"]["conditions"] if c["type"] == "Succeeded")
            await self.events.announce(run, warning("StatusRejected", ended["message"]))
        else:
            refusal = refusal_of(error, key.namespace)
            written = await show_refusal(self.client, self.events, run, path, refusal, self.clock())
        if written is not None:
            self._wrote(key, written)

    async def _announce(self, run: dict[str, Any], plan: RunPlan) -> None:
        if plan.finished is not None:
            metrics.RUNS_FINISHED.labels(plan.finished).inc()
        for announcement in plan.events:
            await self.events.announce(run, announcement)
