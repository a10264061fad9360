#!/usr/bin/env python3
"""Data-aware hand-off latency: a producer's task pod succeeding -> the
consumer's first task pod existing, when the consumer is scheduled on the
asset that task updates.

Both ends are timed by this process from one pod watch (monotonic clock at
event receipt). The hand-off in between is: the producer run's pass records
the update on the Asset (a GET and a status patch, or a create the first
time) and its own status; the Asset's watch event wakes the consumer
Pipeline; its pass creates the asset run; that run's first pass records its
snapshot and creates its pod. Rounds run one after the other (each waits for
its consumer pod), on the benchmark's kwok cluster, whose pods finish at once.

Figures (p50/p90/p99/max) are printed and saved as JSON in bench/results/;
nothing is asserted.

Usage: bench/asset_latency.py [--rounds N] [--cluster bench|tests] [--operator-rev REV]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from sluicebench import cluster, stats
from sluicebench.kube import Kube, load_endpoint

ASSET = "bench.daily_sales"
SIM = {"sim.sluice.dev/duration": "0s"}


def pipelines(namespace: str) -> list[dict[str, Any]]:
    def spec(**extra: Any) -> dict[str, Any]:
        return {"name": "t", "image": "busybox:1.36", "metadata": {"annotations": SIM}, **extra}

    producer = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "producer", "namespace": namespace},
        "spec": {"tasks": [spec(updatesAssets=[ASSET])]},
    }
    consumer = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "consumer", "namespace": namespace},
        "spec": {
            "tasks": [spec(args=["$(context.triggeredBy.bench.daily_sales.run)"])],
            "schedule": {"onAssets": [ASSET], "successfulRunsHistoryLimit": 5},
        },
    }
    return [producer, consumer]


class Watcher:
    """Pod events of the namespace: when each producer pod succeeded and
    each consumer pod appeared.
    """

    def __init__(self) -> None:
        self.succeeded: dict[str, float] = {}  # producer run -> time
        self.created: dict[str, float] = {}  # consumer run -> time
        self.changed = asyncio.Event()

    def on_pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        labels = obj["metadata"].get("labels") or {}
        run, pipeline = labels.get("sluice.dev/run"), labels.get("sluice.dev/pipeline")
        if not run:
            return
        if pipeline == "consumer" and kind == "ADDED":
            self.created.setdefault(run, now)
        if pipeline == "producer" and (obj.get("status") or {}).get("phase") == "Succeeded":
            self.succeeded.setdefault(run, now)
        self.changed.set()

    def both(self, producer_run: str, consumer_run: str) -> Callable[[], bool]:
        return lambda: producer_run in self.succeeded and consumer_run in self.created

    async def until(self, condition: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the round did not finish in time")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue


async def measure(kubeconfig: str, rounds: int) -> list[float]:
    kube = Kube(load_endpoint(kubeconfig))
    namespace = f"bench-assets-{uuid.uuid4().hex[:6]}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    watcher = Watcher()
    listed = asyncio.Event()
    watch = asyncio.create_task(
        kube.watch(f"/api/v1/namespaces/{namespace}/pods", watcher.on_pod, ready=listed)
    )
    try:
        await listed.wait()
        for obj in pipelines(namespace):
            await kube.create(f"/apis/sluice.dev/v1alpha1/namespaces/{namespace}/pipelines", obj)
        gaps = []
        # Round 0 warms up (the operator's first passes, the Asset's creation): not counted.
        for n in range(rounds + 1):
            producer_run = f"producer-{n}"
            body = {
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "PipelineRun",
                "metadata": {"name": producer_run, "namespace": namespace},
                "spec": {"pipelineRef": {"name": "producer"}},
            }
            await kube.create(f"/apis/sluice.dev/v1alpha1/namespaces/{namespace}/pipelineruns", body)
            consumer_run = f"consumer-asset-{n + 1}"
            await watcher.until(watcher.both(producer_run, consumer_run), 60)
            gap = watcher.created[consumer_run] - watcher.succeeded[producer_run]
            if n:
                gaps.append(gap)
            print(f"  round {n}{' (warm-up)' if not n else ''}: {gap * 1000:.1f} ms", flush=True)
        return gaps
    finally:
        watch.cancel()
        await kube.delete(f"/api/v1/namespaces/{namespace}")
        await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cluster", choices=("bench", "tests"), default="bench")
    parser.add_argument("--operator-rev", help="run the operator and CRDs of this commit (git archive)")
    parser.add_argument("--workers", default="16")
    args = parser.parse_args()
    tree, sha, kubeconfig = cluster.prepared(args.cluster, args.operator_rev)
    log = cluster.ROOT / "bench" / "operator.log"
    operator = cluster.Operator(tree, kubeconfig, args.workers, "0", log)
    try:
        gaps = asyncio.run(measure(kubeconfig, args.rounds))
    finally:
        operator.stop()
    figures = stats.summary(gaps)
    print(f"producer pod Succeeded -> consumer pod created, {args.rounds} rounds: {figures}")
    result = {"scenario": "asset-handoff", "figures": figures, "machine": cluster.machine_facts(sha)}
    cluster.save_result("asset-latency", result)


if __name__ == "__main__":
    main()
