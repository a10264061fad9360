"""Wiring: informers feed the cache and the work queue; workers reconcile.

kopf provides the process lifecycle (startup, cleanup, signals, the
liveness endpoint) and the credentials. The watches are Sluice's own
informers (see informer.py): filtered by the API server, with none of a
framework's per-event machinery, because every DAG edge waits on them.

A task pod finishing must wake its *parent* run: watch handlers here only
record what they saw and enqueue the owner's key, and a pool of workers
drains the queue (coalesced, one worker per key at a time) into the
reconciler of the key's kind. That keeps the path from "pod succeeded" to
"dependent pod created" to one watch event plus one reconcile.

The process's one ``Controller`` travels in kopf's memo (``memo.controller``),
so handlers share it without a module global.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from typing import Any, cast

import kopf

from sluice import metrics
from sluice.api import labels
from sluice.api.v1alpha1 import (
    ASSETS,
    BACKFILLS,
    FINISHED_RUN_PHASES,
    GROUP,
    PIPELINE_RUNS,
    PIPELINES,
    VERSION,
)
from sluice.cache import ChildCache
from sluice.events import EventRecorder
from sluice.informer import Informer
from sluice.kube import ApiError, KubeClient, in_cluster_connection
from sluice.leader import LeaderElector
from sluice.reconcilers.asset_index import AssetIndex
from sluice.reconcilers.backfill import BackfillReconciler
from sluice.reconcilers.keys import BackfillKey, Key, OwnWrites, PipelineKey, RunKey
from sluice.reconcilers.pipeline import PipelineReconciler
from sluice.reconcilers.pipelinerun import RunReconciler
from sluice.settings import Settings
from sluice.webhook import AdmissionWebhook
from sluice.workqueue import IDLE, NORMAL, URGENT, WorkQueue

log = logging.getLogger("sluice")

MANAGED = f"{labels.MANAGED_BY}={labels.MANAGER}"
MAX_BACKOFF = 30.0
CONFLICT_RETRY_SECONDS = 0.05


# What controlling_run reads of an ownerReference.
OWNER_KEYS = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")


def pod_tombstone(pod: dict[str, Any]) -> dict[str, Any]:
    """What forgetting a task pod needs: its run (labels, owner) and name."""
    meta = pod["metadata"]
    pod_labels = meta.get("labels") or {}
    return {
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "labels": {k: pod_labels[k] for k in (labels.RUN, labels.RUN_UID) if k in pod_labels},
            "ownerReferences": [{k: o.get(k) for k in OWNER_KEYS} for o in meta.get("ownerReferences") or ()],
            "deletionTimestamp": meta.get("deletionTimestamp") or "deleted",
        }
    }


def run_tombstone(run: dict[str, Any]) -> dict[str, Any]:
    """What a run deleted while the watch was down still has to tell: who
    to forget, and whom its going concerns (its Backfill, a rerun's source
    Pipeline).
    """
    meta = run["metadata"]
    run_labels = meta.get("labels") or {}
    rerun_of = (run.get("spec") or {}).get("rerunOf")
    return {
        "metadata": {
            **{k: meta[k] for k in ("name", "namespace", "uid") if k in meta},
            "labels": {k: run_labels[k] for k in (labels.BACKFILL_UID,) if k in run_labels},
        },
        "spec": {"rerunOf": rerun_of} if rerun_of else {},
        "status": {"pipelineName": (run.get("status") or {}).get("pipelineName")},
    }


class Controller:
    """Everything the handlers share; one per operator process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = ChildCache()
        # Followers fill the queue from watch events but only the leader drains it.
        self.queue: WorkQueue[Key] = WorkQueue()
        self.failures: dict[Key, int] = {}
        # The refusal last shown on each object, so a retried pass that meets
        # it again posts no second Event (cleared by a pass that completes).
        self.refusals_shown: dict[Key, tuple[int, str, str, str]] = {}
        self.pipeline_writes = OwnWrites()
        self.client: KubeClient | None = None
        self.runs: RunReconciler | None = None
        self.pipelines: PipelineReconciler | None = None
        self.backfills: BackfillReconciler | None = None
        self.backfill_writes = OwnWrites()
        # Backfills by namespace and name -> (its pipeline, its UID): whom a
        # Pipeline's or a run's event concerns.
        self.backfill_index: dict[tuple[str, str], tuple[str, str]] = {}
        # What a Backfill counts of each of its runs, as last seen.
        self.backfill_run_states: dict[tuple[str, str], tuple[str | None, bool]] = {}
        # Assets, and the Pipelines scheduled on each.
        self.assets = AssetIndex(settings.namespace or "")
        self.workers: list[asyncio.Task[None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.leading = False
        self.synced = asyncio.Event()  # every informer has listed
        self.elector: LeaderElector | None = None
        self.info: kopf.ConnectionInfo | None = None

    def lease_client(self) -> KubeClient:
        assert self.info is not None
        return KubeClient(self.info)

    def healthy(self) -> bool:
        """For /healthz: able to lead or to follow (see LeaderElector.healthy)."""
        return self.elector is None or self.elector.healthy()

    async def start(self, info: kopf.ConnectionInfo) -> None:
        self.info = info
        self.client = KubeClient(info, qps=self.settings.api_qps, burst=self.settings.api_burst)
        events = EventRecorder(self.client)
        self.runs = RunReconciler(self.client, self.cache, events, self.settings, self.pipeline_writes)
        self.pipelines = PipelineReconciler(
            self.client, events, self.pipeline_writes, self.runs.peers, self.assets
        )
        self.backfills = BackfillReconciler(self.client, events, self.backfill_writes, self.runs.peers)
        # The lease is sought while the informers list: a new replica taking
        # over from a dead one waits out its lease and loads its cache at
        # the same time, not one after the other.
        self.tasks.append(asyncio.create_task(self._lead()))
        if self.settings.webhook_port:
            # Every replica serves admission reviews, leader or not.
            self.tasks.append(asyncio.create_task(AdmissionWebhook(self.client, self.settings).run()))
        try:
            await self._start_informers()
        except BaseException:
            # kopf retries the startup: let go of everything this attempt
            # began (the lease included, so a healthy standby may lead).
            await self.stop()
            raise
        self.synced.set()
        metrics.serve(self.settings.metrics_port, lambda: len(self.queue))

    async def _start_informers(self) -> None:
        """Watch pipelines, runs and task pods; return once each has listed,
        so a restarted operator never mistakes "not seen yet" for "not
        created" (no worker runs before that). Runs are listed before pods,
        so a pod's event can tell a run in flight from a finished one.
        """
        assert self.client is not None
        scope = f"/namespaces/{self.settings.namespace}" if self.settings.namespace else ""
        group = f"/apis/{GROUP}/{VERSION}{scope}"
        informers = [
            Informer(self.client, f"{group}/{PIPELINES}", self.saw_pipeline, name="pipelines"),
            # Smaller pages: one run of a 5,000-task pipeline is over a megabyte.
            Informer(
                self.client,
                f"{group}/{PIPELINE_RUNS}",
                self.saw_run,
                name="pipelineruns",
                page=250,
                tombstone=run_tombstone,
            ),
            Informer(
                self.client,
                f"/api/v1{scope}/pods",
                self.saw_pod,
                MANAGED,
                name="task pods",
                tombstone=pod_tombstone,
            ),
        ]
        informers.append(Informer(self.client, f"{group}/{BACKFILLS}", self.saw_backfill, name="backfills"))
        informers.append(Informer(self.client, f"{group}/{ASSETS}", self.saw_asset, name="assets"))
        for informer in informers:
            try:
                await informer.list()
            except ApiError as error:
                if error.not_found and informer.name in ("backfills", "assets"):
                    # Helm installs CRDs only on a first install.
                    raise RuntimeError(
                        f"the {informer.name}.sluice.dev CRD is not installed: apply this release's "
                        "CRDs (kubectl apply --server-side -f crds/) before upgrading the operator"
                    ) from error
                raise
            self.tasks.append(asyncio.create_task(informer.run()))
        # What was loaded at startup (modules, the listed objects) lives for
        # the process: keep it out of every later garbage collection, whose
        # full passes otherwise pause the event loop for 100+ ms under load.
        gc.freeze()

    async def _lead(self) -> None:
        """Reconcile only while holding the lease; followers keep their caches warm."""
        assert self.client is not None
        elector = None
        if self.settings.leader_election:
            # Its own connection: the fence below stops the workers' writes,
            # never the renewals, and a pool full of reconcile calls cannot
            # delay a renewal.
            elector = LeaderElector(
                self.lease_client(),
                self.settings.leader_namespace,
                identity=self.settings.identity,
                lease_seconds=self.settings.lease_seconds,
                renew_seconds=self.settings.renew_seconds,
            )
            self.elector = elector
            await elector.acquire()
            self.client.may_write = lambda: elector.leading and elector.monotonic() < elector.fence_at
            self.tasks.append(asyncio.create_task(elector.keep()))
        # No worker before every informer has listed (see _start_informers).
        await self.synced.wait()
        if elector is not None and elector.lost.is_set():
            return self._step_down()
        self.leading = True
        metrics.LEADER.set(1)
        self.workers = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]
        if elector is not None:
            await elector.lost.wait()
            self._step_down()

    def _step_down(self) -> None:
        log.error("lost the leader lease; stopping so that only one replica reconciles")
        self.leading = False
        metrics.LEADER.set(0)
        for worker in self.workers:
            worker.cancel()
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        """Stop everything started; give the lease back if it is held (also
        when the workers had not started yet).
        """
        tasks = [*self.workers, *self.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers, self.tasks = [], []
        if self.runs is not None:
            await self.runs.last_runs.close()
        if self.elector is not None:
            if self.elector.leading:
                await self.elector.release()
            await self.elector.client.close()
            self.elector = None
        if self.client is not None:
            await self.client.close()
            self.client = None
        self.leading = False

    async def _reconcile(self, key: Key) -> float | None:
        assert self.runs is not None and self.pipelines is not None and self.backfills is not None
        if isinstance(key, PipelineKey):
            return await self.pipelines.reconcile(key)
        if isinstance(key, BackfillKey):
            return await self.backfills.reconcile(key)
        return await self.runs.reconcile(key)

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            kind = {PipelineKey: "pipeline", BackfillKey: "backfill"}.get(type(key), "run")
            result = "ok"
            with metrics.RECONCILE_SECONDS.labels(kind).time():
                try:
                    again = await self._reconcile(key)
                    self.failures.pop(key, None)
                    self.refusals_shown.pop(key, None)
                    if again is not None:
                        self.queue.add_after(key, again)
                except ApiError as error:
                    if error.conflict:
                        # Our view was stale; the newer version's event re-queues the key.
                        result = "conflict"
                        log.debug("conflict on %s, retrying: %s", key, error)
                        self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
                    else:
                        result = "error"
                        if error.permanent:
                            await self._show_refusal(key, error)
                        self._backoff(key, error)
                except Exception as error:
                    result = "error"
                    self._backoff(key, error)
                finally:
                    metrics.RECONCILES.labels(kind, result).inc()
                    self.queue.done(key)

    async def _show_refusal(self, key: Key, error: ApiError) -> None:
        """Retrying may not fix a 403 or a 422 (someone must grant a verb or
        fix what is sent): the object shows it while the retries go on.
        """
        assert self.runs is not None and self.pipelines is not None and self.backfills is not None
        seen = (error.status, error.verb, error.resource, error.message)
        if self.refusals_shown.get(key) == seen:
            return  # shown when first met: the retries add nothing
        try:
            if isinstance(key, PipelineKey):
                await self.pipelines.show_refusal(key, error)
            elif isinstance(key, BackfillKey):
                await self.backfills.show_refusal(key, error)
            else:
                await self.runs.show_refusal(key, error)
        except Exception:
            # Not shown (the API server may be restarting): the next retry tries again.
            log.exception("could not show the refusal on %s", key)
            return
        self.refusals_shown[key] = seen

    def _backoff(self, key: Key, error: BaseException) -> None:
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        delay = min(MAX_BACKOFF, 0.1 * 2 ** (count - 1))
        log.exception("reconcile of %s failed (attempt %d), retrying in %.1fs: %s", key, count, delay, error)
        self.queue.add_after(key, delay)

    # --- what the watches saw ---------------------------------------------------------

    def saw_run(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = RunKey(meta["namespace"], meta["name"])
        if kind == "DELETED":
            # One last pass releases the finalizers of its pods (being
            # garbage-collected); the cache drops them as they go.
            self.cache.forget_run(meta.get("uid", ""))
            if self.runs is not None:
                self.runs.forget(key, meta.get("uid", ""))
            self.queue.add(key)
            self._wake_rerun_source_pipeline(obj)
            self._enqueue_backfill(obj, gone=True)
            return
        if self.runs is not None:
            self.runs.peers.observe(obj)
            self.runs.observe_run(obj)
        self._enqueue_backfill(obj, gone=False)
        status = obj.get("status") or {}
        finished = status.get("phase") in FINISHED_RUN_PHASES and not meta.get("deletionTimestamp")
        if self.runs is None or not self.runs.wrote(key, meta.get("resourceVersion", "")):
            # A status this operator just wrote needs no pass: the pass that
            # wrote it acted on everything it knew. A finished run's pass
            # (its time to live, leftovers) waits behind every live run.
            self.queue.add(key, IDLE if finished else NORMAL)
        if not finished:
            return
        # A finished run frees a concurrency slot; a scheduled one may free a
        # Forbid slot or exceed history limits.
        pipeline = status.get("pipelineName")
        if pipeline and self.runs is not None:
            for waiting in self.runs.waiting_for_slot.release(meta["namespace"], pipeline):
                self.queue.add(waiting)
        for owner in meta.get("ownerReferences") or ():
            if owner.get("kind") == "Pipeline":
                self.queue.add(PipelineKey(meta["namespace"], owner["name"]))
        self._wake_rerun_source_pipeline(obj)

    def _wake_rerun_source_pipeline(self, obj: dict[str, Any]) -> None:
        """A rerun that finished or went no longer needs its source: the
        history limits its schedule held back for it may now prune it.
        """
        pipeline = (obj.get("status") or {}).get("pipelineName")
        if (obj.get("spec") or {}).get("rerunOf") and pipeline and pipeline != labels.INLINE_PIPELINE:
            self.queue.add(PipelineKey(obj["metadata"]["namespace"], pipeline))

    def saw_pod(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.cache.delete_pod(obj)
            self._enqueue_owner(obj)
        elif self.cache.upsert_pod(obj):
            self._enqueue_owner(obj)

    def saw_pipeline(self, kind: str, obj: dict[str, Any]) -> None:
        """Report a Pipeline's validity and schedule, and wake runs that were
        waiting for it to exist.
        """
        meta = obj["metadata"]
        key = PipelineKey(meta["namespace"], meta["name"])
        self.assets.saw_pipeline(kind, obj)
        if kind == "DELETED":
            self.pipeline_writes.forget(key)
            self._wake_backfills_of(key)
            return
        if self.runs is not None:
            for waiting in self.runs.waiting_for_pipeline.release(meta["namespace"], meta["name"]):
                self.queue.add(waiting)
        if self.pipeline_writes.ours(key, meta.get("resourceVersion", "")):
            # Our own status write (every run started by hand records itself
            # there): nothing new for the pipeline's pass, nor its Backfills'.
            return
        self.queue.add(key)
        self._wake_backfills_of(key)

    def _wake_backfills_of(self, pipeline: PipelineKey) -> None:
        """The Pipeline appeared, changed or went: its Backfills look again."""
        for (namespace, name), (of, _) in self.backfill_index.items():
            if (namespace, of) == (pipeline.namespace, pipeline.name):
                self.queue.add(BackfillKey(namespace, name))

    def saw_asset(self, kind: str, obj: dict[str, Any]) -> None:
        """An asset was updated (or appeared, changed its sharing, went): the
        Pipelines scheduled on it look again.
        """
        for key in self.assets.saw_asset(kind, obj):
            self.queue.add(key)

    def saw_backfill(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = BackfillKey(meta["namespace"], meta["name"])
        if kind == "DELETED":
            self.backfill_writes.forget(key)
            self.backfill_index.pop((key.namespace, key.name), None)
            return
        pipeline = ((obj.get("spec") or {}).get("pipelineRef") or {}).get("name", "")
        self.backfill_index[(key.namespace, key.name)] = (pipeline, meta.get("uid", ""))
        if not self.backfill_writes.ours(key, meta.get("resourceVersion", "")):
            self.queue.add(key)

    def _enqueue_backfill(self, obj: dict[str, Any], gone: bool) -> None:
        """A run a Backfill made began, ended, was asked to stop, or went:
        that Backfill counts again. Its other changes (every task's status
        write) change nothing the Backfill counts.
        """
        meta = obj["metadata"]
        uid = (meta.get("labels") or {}).get(labels.BACKFILL_UID)
        if not uid:
            return
        where = (meta["namespace"], meta["name"])
        state = (
            (obj.get("status") or {}).get("phase"),
            bool((obj.get("spec") or {}).get("cancelled")),
        )
        if gone:
            self.backfill_run_states.pop(where, None)
        elif self.backfill_run_states.get(where) == state:
            return
        else:
            self.backfill_run_states[where] = state
        for (namespace, name), (_, backfill_uid) in self.backfill_index.items():
            if backfill_uid == uid and namespace == meta["namespace"]:
                self.queue.add(BackfillKey(namespace, name))
                return

    def _enqueue_owner(self, obj: dict[str, Any]) -> None:
        """A task pod changed. A run in flight has a DAG edge to take, ahead
        of new runs; a finished (or unknown, deleted) run only needs a pass
        when the pod is being deleted and waits for its finalizer.
        """
        meta = obj["metadata"]
        run = (meta.get("labels") or {}).get(labels.RUN)
        for owner in meta.get("ownerReferences") or ():
            if owner.get("kind") == "PipelineRun":
                run = owner["name"]
        if not run:
            return
        key = RunKey(meta["namespace"], run)
        if self.runs is not None and key in self.runs.live:
            self.queue.add(key, URGENT)
        elif meta.get("deletionTimestamp"):
            self.queue.add(key, NORMAL)


# --- kopf handlers: registration only ---------------------------------------------------


def _controller(memo: kopf.Memo) -> Controller:
    return cast(Controller, memo.controller)


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    ctl = _controller(memo)
    settings.posting.level = logging.WARNING
    # kopf watches nothing here (the informers do): no cluster-wide CRD or
    # namespace scans, so a namespaced install needs no cluster-scoped rights.
    settings.scanning.disabled = True
    info = in_cluster_connection() or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: neither in-cluster nor a kubeconfig")
    await ctl.start(info)
    logger.info(
        "sluice started: watching %s, %d workers, api qps %s",
        f"namespace {ctl.settings.namespace}" if ctl.settings.namespace else "all namespaces",
        ctl.settings.workers,
        ctl.settings.api_qps or "unlimited",
    )


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).stop()


@kopf.on.probe(id="lease")
def lease_probe(memo: kopf.Memo, **_: Any) -> str:
    """Fail /healthz (so the kubelet restarts the pod) when this replica can
    neither lead nor follow: cut off from the API server for a lease time.
    """
    if not _controller(memo).healthy():
        # Permanent: kopf would otherwise retry a failed probe with backoff.
        raise kopf.PermanentError("cannot lead or follow: the lease has been out of reach")
    return "ok"
