#!/usr/bin/env python3
"""Dependency latency: from a task's Job succeeding to its dependents' Jobs existing.

Scenarios on the kwok cluster, with simulated pods that finish at once:
  chain      one run of a 20-task chain (19 edges)
  fanout     one run of root -> 100 parallel tasks -> join
  chain x50  50 runs of a 5-task chain started together (do runs starve each other?)

Both ends of each edge are timed by this process from one watch on Jobs, so
the figure is what a user sees: watch delivery to the operator, its
reconcile, the create call, and watch delivery back. It prints p50/p99 and
Job creations per second and saves JSON in bench/results/.

Usage: bench/latency.py [--workers N] [--qps Q] [--out FILE]
(brings the kwok cluster up if it is not, and runs its own operator process)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import yaml
from kubernetes import client, config, watch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGE = "busybox:1.36"


class JobClock:
    """When each Job was first seen, and when its task was first seen done:
    its pod Succeeded or the Job succeeded, whichever this process saw first."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.created: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.meta: dict[str, tuple[str, str]] = {}  # job -> (run, task)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(
                target=self._watch, args=(self.batch.list_namespaced_job, self._on_job), daemon=True
            ),
            threading.Thread(
                target=self._watch, args=(self.core.list_namespaced_pod, self._on_pod), daemon=True
            ),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _watch(self, lister: Any, handle: Any) -> None:
        version = None
        while not self.stop.is_set():
            stream = watch.Watch()
            kwargs = {"timeout_seconds": 300, **({"resource_version": version} if version else {})}
            for event in stream.stream(lister, self.namespace, **kwargs):
                now = time.monotonic()
                version = event["object"].metadata.resource_version
                with self.lock:
                    handle(event["object"], now)
                if self.stop.is_set():
                    break

    def _on_job(self, job: Any, now: float) -> None:
        name = job.metadata.name
        self.created.setdefault(name, now)
        labels = job.metadata.labels or {}
        self.meta[name] = (labels.get("sluice.dev/run", ""), labels.get("sluice.dev/task", ""))
        if (job.status.succeeded or 0) > 0:
            self.succeeded.setdefault(name, now)

    def _on_pod(self, pod: Any, now: float) -> None:
        job = (pod.metadata.labels or {}).get("batch.kubernetes.io/job-name")
        if job and pod.status.phase == "Succeeded":
            self.succeeded.setdefault(job, now)

    def job_of(self, run: str, task: str) -> str | None:
        with self.lock:
            return next((j for j, (r, t) in self.meta.items() if r == run and t == task), None)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "count": len(ms),
        "p50_ms": round(pct(ms, 50), 1),
        "p90_ms": round(pct(ms, 90), 1),
        "p99_ms": round(pct(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(kubectl_path()), "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def hack_env() -> dict[str, str]:
    """The benchmark uses the tests' kwok cluster (own state dir and ports)."""
    from tests.integration.conftest import TEST_CLUSTER_ENV  # noqa: PLC0415

    return {**os.environ, **TEST_CLUSTER_ENV}


def hack(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "hack" / "cluster"), *args], capture_output=True, text=True, check=check, env=hack_env()
    )


def cluster_env() -> dict[str, str]:
    out = hack("env").stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def kubectl_path() -> pathlib.Path:
    return pathlib.Path(cluster_env()["PATH"].split(":", 1)[0]) / "kubectl"


def ensure_cluster() -> str:
    existing = os.environ.get("KUBECONFIG")
    if existing:
        return existing
    kubeconfig = cluster_env()["KUBECONFIG"]
    if hack("status", check=False).returncode != 0:
        subprocess.run([str(ROOT / "hack" / "cluster"), "up", "--nodes", "kwok"], check=True, env=hack_env())
    return kubeconfig


def pipeline(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"tasks": tasks},
    }


def task(name: str, *deps: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": IMAGE}
    if deps:
        spec["dependsOn"] = list(deps)
    return spec


def run(name: str, pipeline_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": pipeline_name}},
    }


def wait_runs(custom: client.CustomObjectsApi, namespace: str, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelineruns")[
            "items"
        ]
        for item in items:
            phase = (item.get("status") or {}).get("phase")
            if item["metadata"]["name"] in pending and phase in ("Succeeded", "Failed"):
                if phase == "Failed":
                    raise SystemExit(f"run {item['metadata']['name']} failed: {item['status']}")
                pending.discard(item["metadata"]["name"])
        time.sleep(0.2)
    if pending:
        raise SystemExit(f"runs did not finish in {timeout}s: {sorted(pending)[:5]}")


def edge_latencies(clock: JobClock, runs: list[str], edges: list[tuple[str, str]]) -> list[float]:
    result = []
    for run_name in runs:
        for parent, child in edges:
            parent_job, child_job = clock.job_of(run_name, parent), clock.job_of(run_name, child)
            if parent_job and child_job and parent_job in clock.succeeded:
                result.append(clock.created[child_job] - clock.succeeded[parent_job])
    return result


def scenario(
    kubeconfig: str,
    api: client.ApiClient,
    label: str,
    tasks: list[dict[str, Any]],
    runs: int,
    edges: list[tuple[str, str]],
) -> dict[str, Any]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    custom = client.CustomObjectsApi(api)
    clock = JobClock(api, namespace)
    clock.start()
    try:
        kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(pipeline("p", tasks)))
        names = [f"r{i}" for i in range(runs)]
        started = time.monotonic()
        kubectl(
            kubeconfig,
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=yaml.safe_dump_all([run(n, "p") for n in names]),
        )
        wait_runs(custom, namespace, names, timeout=600)
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # let the watch deliver the last events before reading the clock
        latencies = edge_latencies(clock, names, edges)
        jobs = len(clock.created)
        result = {
            "scenario": label,
            "runs": runs,
            "tasks_per_run": len(tasks),
            "jobs_created": jobs,
            "wall_seconds": round(elapsed, 2),
            "job_creations_per_second": round(jobs / elapsed, 1),
            "edge_latency": summary(latencies) if latencies else None,
        }
        return result
    finally:
        clock.stop.set()
        core.delete_namespace(namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="16")
    parser.add_argument("--qps", default="0")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    kubeconfig = ensure_cluster()
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/pipelineruns.sluice.dev", "--timeout=60s")
    api = config.new_client_from_config(config_file=kubeconfig)
    log = open(ROOT / "bench" / "operator.log", "w")  # noqa: SIM115
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "PYTHONPATH": str(ROOT / "operator"),
        "SLUICE_WORKERS": args.workers,
        "SLUICE_API_QPS": args.qps,
        "POD_NAME": f"bench-{uuid.uuid4().hex[:6]}",
        "SLUICE_LEADER_NAMESPACE": "default",
        "SLUICE_LEASE_SECONDS": "4",
        "SLUICE_RENEW_SECONDS": "1",
    }
    operator = subprocess.Popen(
        [sys.executable, "-m", "sluice", "--health-port", "18099", "--metrics-port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        chain = [task("t0")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, 20)]
        chain_edges = [(f"t{i - 1}", f"t{i}") for i in range(1, 20)]
        fan = (
            [task("root")]
            + [task(f"w{i}", "root") for i in range(100)]
            + [task("join", *[f"w{i}" for i in range(100)])]
        )
        fan_edges = [("root", f"w{i}") for i in range(100)]
        short = [task("t0")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, 5)]
        short_edges = [(f"t{i - 1}", f"t{i}") for i in range(1, 5)]
        results = [
            scenario(kubeconfig, api, "chain of 20", chain, 1, chain_edges),
            scenario(kubeconfig, api, "fan-out of 100", fan, 1, fan_edges),
            scenario(kubeconfig, api, "50 concurrent chains of 5", short, 50, short_edges),
        ]
    finally:
        operator.terminate()
        operator.wait(timeout=20)
    report = {
        "benchmark": "dependency latency",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "operator": {"workers": int(args.workers), "api_qps": float(args.qps)},
        "results": results,
    }
    print(f"{'scenario':<28}{'jobs':>6}{'jobs/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for r in results:
        lat = r["edge_latency"] or {}
        print(
            f"{r['scenario']:<28}{r['jobs_created']:>6}{r['job_creations_per_second']:>8}"
            f"{lat.get('p50_ms', '-'):>9}{lat.get('p90_ms', '-'):>9}{lat.get('p99_ms', '-'):>9}"
            f"{lat.get('max_ms', '-'):>9}"
        )
    out = (
        pathlib.Path(args.out) if args.out else ROOT / "bench" / "results" / f"latency-{report['date']}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
