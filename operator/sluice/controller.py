"""kopf wiring: watches feed the cache and the work queue; workers reconcile.

kopf provides the watch streams, reconnects and the process lifecycle. The
reconciliation itself does not run inside kopf's per-object handlers, because
a Job finishing must wake its *parent* run: handlers here only record what
they saw and enqueue the run's key, and a pool of workers drains the queue
(coalesced, one worker per run at a time). That keeps the path from "Job
complete" to "dependent Job created" to one watch event plus one reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, cast

import kopf

from sluice import labels, metrics
from sluice.api.v1alpha1 import GROUP, VERSION, PipelineStatus
from sluice.cache import ChildCache
from sluice.clock import now_rfc3339
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient, in_cluster_connection, pipeline_path
from sluice.leader import LeaderElector
from sluice.pipeline_status import pipeline_status
from sluice.reconciler import PipelineKey, Reconciler, RunKey
from sluice.scheduler import Scheduler, write_pipeline_status
from sluice.settings import Settings
from sluice.workqueue import WorkQueue

log = logging.getLogger("sluice")

MANAGED = {labels.MANAGED_BY: labels.MANAGER}
MAX_BACKOFF = 30.0


class Controller:
    """Everything the handlers share; one per operator process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = ChildCache()
        # Followers fill the queue from watch events but only the leader drains it.
        self.queue: WorkQueue[RunKey | PipelineKey] = WorkQueue()
        self.failures: dict[RunKey | PipelineKey, int] = {}
        self.client: KubeClient | None = None
        self.reconciler: Reconciler | None = None
        self.scheduler: Scheduler | None = None
        self.workers: list[asyncio.Task[None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.leading = False
        self.elector: LeaderElector | None = None

        self.primed = asyncio.Event()
        self.run_uids: dict[RunKey, str] = {}

    async def start(self, info: kopf.ConnectionInfo) -> None:
        self.client = KubeClient(info, qps=self.settings.api_qps, burst=self.settings.api_burst)
        self.reconciler = Reconciler(self.client, self.cache, EventRecorder(self.client), self.settings)
        self.scheduler = Scheduler(self.client, EventRecorder(self.client))
        await self._prime_cache()
        metrics.serve(self.settings.metrics_port, lambda: len(self.queue))
        self.tasks.append(asyncio.create_task(self._lead()))

    async def _lead(self) -> None:
        """Reconcile only while holding the lease; followers keep their caches warm."""
        assert self.client is not None
        elector = None
        if self.settings.leader_election:
            elector = LeaderElector(
                self.client, self.settings.leader_namespace, identity=self.settings.identity
            )
            await elector.acquire()
            self.tasks.append(asyncio.create_task(elector.keep()))
            self.elector = elector
        self.leading = True
        metrics.LEADER.set(1)
        self.workers = [asyncio.create_task(self._work(i)) for i in range(self.settings.workers)]
        if elector is not None:
            await elector.lost.wait()
            log.error("lost the leader lease; stopping so that only one replica reconciles")
            self.leading = False
            metrics.LEADER.set(0)
            for worker in self.workers:
                worker.cancel()
            os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        for task in [*self.workers, *self.tasks]:
            task.cancel()
        await asyncio.gather(*self.workers, *self.tasks, return_exceptions=True)
        if self.elector is not None and self.leading:
            await self.elector.release()
        if self.client is not None:
            await self.client.close()

    async def _prime_cache(self) -> None:
        """List existing Jobs and pods before the first reconcile, so a
        restarted operator never mistakes "not seen yet" for "not created".
        """
        assert self.client is not None
        selector = f"{labels.MANAGED_BY}={labels.MANAGER}"
        scope = f"/namespaces/{self.settings.namespace}" if self.settings.namespace else ""
        jobs = await self.client.request(
            "GET", f"/apis/batch/v1{scope}/jobs", params={"labelSelector": selector}
        )
        for job in jobs.get("items") or ():
            self.cache.upsert_job(job)
        pods = await self.client.request("GET", f"/api/v1{scope}/pods", params={"labelSelector": selector})
        for pod in pods.get("items") or ():
            self.cache.upsert_pod(pod)
        log.info(
            "cache primed with %d jobs and %d pods",
            len(jobs.get("items") or ()),
            len(pods.get("items") or ()),
        )
        self.primed.set()

    async def _work(self, number: int) -> None:
        assert self.reconciler is not None
        while True:
            key = await self.queue.get()
            kind = "pipeline" if isinstance(key, PipelineKey) else "run"
            result = "ok"
            with metrics.RECONCILE_SECONDS.labels(kind).time():
                try:
                    if isinstance(key, PipelineKey):
                        again = await self._reconcile_pipeline(key)
                    else:
                        again = await self.reconciler.reconcile(key)
                    self.failures.pop(key, None)
                    if again is not None:
                        self.queue.add_after(key, again)
                except ApiError as error:
                    if error.conflict:
                        # Our view was stale; the newer version's event re-queues the run.
                        result = "conflict"
                        log.debug("conflict on %s, retrying: %s", key, error)
                        self.queue.add_after(key, 0.05)
                    else:
                        result = "error"
                        self._backoff(key, error)
                except Exception as error:
                    result = "error"
                    self._backoff(key, error)
                finally:
                    metrics.RECONCILES.labels(kind, result).inc()
                    self.queue.done(key)

    async def _reconcile_pipeline(self, key: PipelineKey) -> float | None:
        """A Pipeline's own status (validity, task count) and its schedule."""
        assert self.client is not None and self.scheduler is not None
        pipeline = await self.client.get_optional(pipeline_path(key.namespace, key.name))
        if pipeline is None:
            return None
        current = PipelineStatus.model_validate(pipeline.get("status") or {})
        status = pipeline_status(pipeline, now_rfc3339()) or current
        status, again = await self.scheduler.reconcile(pipeline, status)
        if status.to_api() != current.to_api():
            await write_pipeline_status(self.client, pipeline, status)
        return again

    def _backoff(self, key: RunKey | PipelineKey, error: BaseException) -> None:
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        delay = min(MAX_BACKOFF, 0.1 * 2 ** (count - 1))
        log.exception("reconcile of %s failed (attempt %d), retrying in %.1fs: %s", key, count, delay, error)
        self.queue.add_after(key, delay)

    def enqueue_owner(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        run = (meta.get("labels") or {}).get(labels.RUN)
        for owner in meta.get("ownerReferences") or ():
            if owner.get("kind") == "PipelineRun":
                run = owner["name"]
        if run:
            self.queue.add(RunKey(meta["namespace"], run))


CONTROLLER: Controller | None = None


def controller() -> Controller:
    assert CONTROLLER is not None, "operator not started"
    return CONTROLLER


def register(settings: Settings) -> None:
    """Create the process's Controller; handlers below use it."""
    global CONTROLLER  # noqa: PLW0603
    CONTROLLER = Controller(settings)


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    ours = controller().settings
    # Latency: kopf's default batch window (0.1 s) would delay every Job event.
    settings.batching.batch_window = 0.01
    settings.batching.worker_limit = None
    # Watches have been seen to hang silently; have the server end them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING
    # Our resources are known up front: no cluster-wide CRD/namespace scans,
    # so a namespaced install needs no cluster-scoped permissions.
    settings.scanning.disabled = True
    settings.persistence.finalizer = "sluice.dev/finalizer"
    info = in_cluster_connection() or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: neither in-cluster nor a kubeconfig")
    await controller().start(info)
    logger.info("sluice started: %d workers, api qps %s", ours.workers, ours.api_qps or "unlimited")


@kopf.on.cleanup()
async def on_cleanup(**_: Any) -> None:
    await controller().stop()


@kopf.on.event(GROUP, VERSION, "pipelineruns")
async def on_run_event(event: kopf.RawEvent, **_: Any) -> None:
    obj = cast(dict[str, Any], event["object"])
    meta = obj.get("metadata") or {}
    if not meta.get("name"):
        return
    key = RunKey(meta["namespace"], meta["name"])
    ctl = controller()
    if event.get("type") == "DELETED":
        ctl.queue.forget(key)
        uid = ctl.run_uids.pop(key, None)
        if uid:
            ctl.cache.forget_run(uid)
        return
    ctl.run_uids[key] = meta.get("uid", "")
    ctl.queue.add(key)
    # A finished run frees a concurrency slot; a scheduled one may free a
    # Forbid slot or exceed history limits.
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Cancelled"):
        pipeline = (obj.get("status") or {}).get("pipelineName")
        if pipeline and ctl.reconciler is not None:
            for waiting in ctl.reconciler.concurrency_waiters.release(meta["namespace"], pipeline):
                ctl.queue.add(waiting)
        for owner in meta.get("ownerReferences") or ():
            if owner.get("kind") == "Pipeline":
                ctl.queue.add(PipelineKey(meta["namespace"], owner["name"]))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def on_job_event(event: kopf.RawEvent, **_: Any) -> None:
    obj = cast(dict[str, Any], event["object"])
    if not (obj.get("metadata") or {}).get("name"):
        return
    ctl = controller()
    if event.get("type") == "DELETED":
        ctl.cache.delete_job(obj)
    else:
        ctl.cache.upsert_job(obj)
    ctl.enqueue_owner(obj)


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def on_pod_event(event: kopf.RawEvent, **_: Any) -> None:
    obj = cast(dict[str, Any], event["object"])
    if not (obj.get("metadata") or {}).get("name"):
        return
    ctl = controller()
    if event.get("type") == "DELETED":
        ctl.cache.delete_pod(obj)
        return
    if ctl.cache.upsert_pod(obj):
        ctl.enqueue_owner(obj)


@kopf.on.event(GROUP, VERSION, "pipelines")
async def on_pipeline_event(event: kopf.RawEvent, **_: Any) -> None:
    """Report a Pipeline's validity and size in its status, and wake runs
    that were waiting for it to exist.
    """
    obj = cast(dict[str, Any], event["object"])
    meta = obj.get("metadata") or {}
    if event.get("type") == "DELETED" or not meta.get("name"):
        return
    ctl = controller()
    if ctl.reconciler is not None:
        for key in ctl.reconciler.waiters.release(meta["namespace"], meta["name"]):
            ctl.queue.add(key)
    ctl.queue.add(PipelineKey(meta["namespace"], meta["name"]))
