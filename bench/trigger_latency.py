#!/usr/bin/env python3
"""Event latency: an HMAC-signed event POSTed to a Trigger -> the HTTP answer,
and -> the first task pod of the run it starts.

This process signs and sends each event, and times the answer and the
run's pod from one pod watch (monotonic clock at event receipt). The
triggers server and the operator run as its children on the benchmark's
kwok cluster (admin credentials: this measures speed, the tests check
RBAC). Events are sent one after another (each waits for its pod), then as
a burst of concurrent senders.

Figures (p50/p90/p99/max) are printed beside the target (p50 < 200 ms to
the first pod) and saved as JSON in bench/results/; nothing is asserted.

Usage: bench/trigger_latency.py [--events N] [--burst N] [--cluster bench|tests] [--operator-rev REV]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp

from sluicebench import cluster, stats
from sluicebench.kube import Kube, load_endpoint

sys.path.insert(0, str(cluster.ROOT / "operator"))
from sluice.triggers.signature import sign

KEY = b"bench-signing-key"
TARGET_P50_MS = 200


class Pods:
    """First pod of each run, by run name, at this process's receipt time."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.changed = asyncio.Event()

    def on_pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        run = (obj["metadata"].get("labels") or {}).get("sluice.dev/run")
        if run and kind == "ADDED":
            self.created.setdefault(run, now)
            self.changed.set()

    async def wait(self, run: str, seconds: float = 60) -> float:
        deadline = time.monotonic() + seconds
        while run not in self.created:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no pod for run {run}")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue
        return self.created[run]


def objects(namespace: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": "hook"}, "data": {"secret": base64.b64encode(KEY).decode()}},
        ),
        (
            f"/apis/sluice.dev/v1alpha1/namespaces/{namespace}/pipelines",
            {
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "Pipeline",
                "metadata": {"name": "ingest"},
                "spec": {
                    "params": [{"name": "object"}],
                    "tasks": [
                        {
                            "name": "load",
                            "image": "busybox:1.36",
                            "args": ["$(params.object)"],
                            "metadata": {"annotations": {"sim.sluice.dev/duration": "0s"}},
                        }
                    ],
                },
            },
        ),
        (
            f"/apis/sluice.dev/v1alpha1/namespaces/{namespace}/triggers",
            {
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "Trigger",
                "metadata": {"name": "landing"},
                "spec": {
                    "pipelineRef": {"name": "ingest"},
                    "secretRef": {"name": "hook"},
                    "params": [{"name": "object", "value": "$(body.key)"}],
                    "idempotencyKey": "$(body.id)",
                },
            },
        ),
    ]


async def send(session: aiohttp.ClientSession, url: str, pods: Pods, event_id: str) -> tuple[float, float]:
    """(answer, first pod) seconds after sending one event."""
    body = json.dumps({"id": event_id, "key": f"landing/{event_id}.csv"}).encode()
    headers = {"Content-Type": "application/json", "X-Sluice-Signature-256": sign(KEY, body)}
    sent = time.monotonic()
    async with session.post(url, data=body, headers=headers) as response:
        answer = await response.json()
        answered = time.monotonic()
        if response.status != 202:
            raise RuntimeError(f"event {event_id}: {response.status} {answer}")
    created = await pods.wait(answer["run"])
    return answered - sent, created - sent


async def measure(kubeconfig: str, port: int, events: int, burst: int) -> dict[str, Any]:
    kube = Kube(load_endpoint(kubeconfig))
    namespace = f"bench-triggers-{uuid.uuid4().hex[:6]}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    pods = Pods()
    listed = asyncio.Event()
    watch = asyncio.create_task(kube.watch(f"/api/v1/namespaces/{namespace}/pods", pods.on_pod, ready=listed))
    url = f"http://127.0.0.1:{port}/v1/namespaces/{namespace}/triggers/landing"
    try:
        await listed.wait()
        for path, body in objects(namespace):
            await kube.create(path, body)
        async with aiohttp.ClientSession() as session:
            # Until the server listens and its watch has the Trigger (404 before), then warm up.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    async with session.post(url, data=b"{}") as response:
                        if response.status != 404:
                            break
                except aiohttp.ClientConnectorError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)
            await send(session, url, pods, "warm-up")
            sequential = [await send(session, url, pods, f"seq-{i}") for i in range(events)]
            started = time.monotonic()
            together = await asyncio.gather(*(send(session, url, pods, f"burst-{i}") for i in range(burst)))
            burst_seconds = time.monotonic() - started
    finally:
        watch.cancel()
        await kube.delete(f"/api/v1/namespaces/{namespace}")
        await kube.close()
    return {
        "sequential": {
            "answer": stats.summary([a for a, _ in sequential]),
            "first_pod": stats.summary([p for _, p in sequential]),
        },
        "burst": {
            "events": burst,
            "seconds": round(burst_seconds, 3),
            "answer": stats.summary([a for a, _ in together]),
            "first_pod": stats.summary([p for _, p in together]),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--cluster", choices=("bench", "tests"), default="bench")
    parser.add_argument("--operator-rev", help="run the operator and server of this commit (git archive)")
    args = parser.parse_args()
    tree, sha, kubeconfig = cluster.prepared(args.cluster, args.operator_rev)
    operator = cluster.Operator(tree, kubeconfig, "16", "0", cluster.ROOT / "bench" / "operator.log")
    port = cluster.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sluice.triggers"],
        env={
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "PYTHONPATH": str(tree / "operator"),
            "SLUICE_TRIGGERS_PORT": str(port),
            "SLUICE_METRICS_PORT": "0",
        },
        stdout=(cluster.ROOT / "bench" / "triggers.log").open("w"),
        stderr=subprocess.STDOUT,
        cwd=tree,
    )
    try:
        figures = asyncio.run(measure(kubeconfig, port, args.events, args.burst))
    finally:
        server.terminate()
        server.wait(timeout=15)
        operator.stop()
    seq, burst = figures["sequential"], figures["burst"]
    print(f"{args.events} events one after another: answer {seq['answer']}")
    print(f"  event -> first task pod: {seq['first_pod']}  (target p50 < {TARGET_P50_MS} ms)")
    print(f"{args.burst} events at once ({burst['seconds']} s): answer {burst['answer']}")
    print(f"  event -> first task pod: {burst['first_pod']}")
    result = {"scenario": "trigger-events", **figures, "target_p50_ms": TARGET_P50_MS}
    result["machine"] = cluster.machine_facts(sha)
    cluster.save_result("trigger-latency", result)


if __name__ == "__main__":
    main()
