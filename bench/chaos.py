#!/usr/bin/env python3
"""Chaos: concurrent runs of mixed DAGs while the operator and the control plane are killed.

On the benchmark's kwok cluster (or the tests' with --cluster tests), with
the operator as a child process:

  * --runs runs (default 50) of four pipelines, submitted together: chains,
    a fan-out/fan-in, a task that fails once and is retried, and a task that
    always fails (its run must end Failed, its dependents Skipped);
  * meanwhile the operator is SIGKILLed every 2-5 s and started again at
    once (the same identity, as a restarted container), kube-apiserver is
    restarted twice and etcd once (`hack/cluster restart`);
  * the chaos stops after --chaos-seconds, and the runs must then finish.

Reported (and saved as JSON in bench/results/): runs finished, runs lost (not
finished by the deadline), runs with the wrong outcome, pods per
(run, task, attempt) beyond one, tasks that ran more attempts than their
retries allow, and time to recover: from each disruption to the operator's
next progress (a pod created or a run finished). The target for every loss
is zero.

Usage: bench/chaos.py [--runs N] [--chaos-seconds S] [--cluster bench|tests] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import random
import re
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp

# Run as a script: bench/ is sys.path[0], so the helpers import as a package.
from sluicebench import cluster
from sluicebench.kube import ApiError, Handler, Kube, load_endpoint
from sluicebench.scenarios import pipeline_of, run, task

RESULTS = cluster.ROOT / "bench" / "results"
GROUP = "/apis/sluice.dev/v1alpha1/namespaces"
Result = dict[str, Any]
FINISHED = ("Succeeded", "Failed")
DENIED = re.compile(r"cannot [a-z]+ resource")  # how the API server words an RBAC denial
LOSSES = ("runs_lost", "runs_wrong_outcome", "duplicate_pods", "tasks_over_retries")


def flaky(name: str, *deps: str, always: bool = False, retries: int = 2) -> dict[str, Any]:
    spec = task(name, *deps, duration="1s")
    spec["metadata"]["labels"] = {"sim.sluice.dev/fail": "true" if always else "first-attempt"}
    spec["retries"] = {"limit": retries, "backoff": {"initialSeconds": 1, "factor": 1, "maxSeconds": 1}}
    return spec


def pipelines() -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (Pipeline, the phase its runs must end in)."""
    chain = [task(f"c{i}", *([f"c{i - 1}"] if i else []), duration="1s") for i in range(5)]
    fan = [task("root", duration="1s")]
    fan += [task(f"w{i}", "root", duration="2s") for i in range(8)]
    fan += [task("join", *[f"w{i}" for i in range(8)], duration="1s")]
    retried = [
        task("extract", duration="1s"),
        flaky("load", "extract"),
        task("report", "load", duration="1s"),
    ]
    failing = [task("extract", duration="1s"), flaky("load", "extract", always=True, retries=1)]
    failing += [task("report", "load", duration="1s"), task("audit", "extract", duration="1s")]
    return {
        "chain": (pipeline_of("chain", chain), "Succeeded"),
        "fan": (pipeline_of("fan", fan), "Succeeded"),
        "retried": (pipeline_of("retried", retried), "Succeeded"),
        "failing": (pipeline_of("failing", failing), "Failed"),
    }


@dataclass
class Observed:
    """What the watches saw: every pod ever created, each run's phase, progress times."""

    pods: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    phases: dict[str, str] = field(default_factory=dict)
    progress: list[float] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        labels = obj["metadata"].get("labels") or {}
        key = (
            labels.get("sluice.dev/run", ""),
            labels.get("sluice.dev/task", ""),
            labels.get("sluice.dev/attempt", ""),
        )
        uid = obj["metadata"]["uid"]
        if kind == "ADDED" and uid not in self.pods[key]:
            self.pods[key].add(uid)
            self.progress.append(now)

    def on_run(self, kind: str, obj: dict[str, Any], now: float) -> None:
        phase = (obj.get("status") or {}).get("phase")
        name = obj["metadata"]["name"]
        if phase in ("Succeeded", "Failed", "Cancelled") and self.phases.get(name) != phase:
            self.progress.append(now)
        if phase:
            self.phases[name] = phase
        if self.expected and all(self.phases.get(n) in FINISHED for n in self.expected):
            self.all_done.set()


async def resilient_watch(kube: Kube, path: str, handle: Handler, ready: asyncio.Event) -> None:
    """Watch across the API server's restarts: a refused connection is retried."""
    while True:
        try:
            await kube.watch(path, handle, ready=ready)
        except (aiohttp.ClientError, OSError, ApiError, TimeoutError):
            await asyncio.sleep(0.5)


class Operators:
    """The operator, killed and started again under one identity."""

    def __init__(self, kubeconfig: str, args: argparse.Namespace) -> None:
        self.kubeconfig = kubeconfig
        self.args = args
        self.identity = f"chaos-{uuid.uuid4().hex[:6]}"
        self.starts = 0
        self.exits = 0  # exits of its own (not our SIGKILLs)
        self.current: cluster.Operator | None = None

    def log(self, start: int) -> pathlib.Path:
        return pathlib.Path(self.args.log_dir or RESULTS) / f"{self.identity}-{start}.log"

    def denied_calls(self) -> int:
        """Lines of its logs where the API server denied it a call (RBAC).
        A kube-apiserver that has just restarted may deny for a moment,
        before its authorizer's caches are filled; more is an RBAC gap."""
        return sum(
            len(DENIED.findall(self.log(n).read_text(errors="replace")))
            for n in range(1, self.starts + 1)
            if self.log(n).exists()
        )

    def start(self) -> None:
        self.starts += 1
        log = self.log(self.starts)
        self.current = cluster.Operator(
            cluster.ROOT,
            self.args.operator_kubeconfig or self.kubeconfig,
            "16",
            "0",
            log,
            identity=self.identity,
            lease_seconds="15",
            leader_namespace=self.args.leader_namespace,
        )

    async def supervise(self) -> None:
        """Start it again whenever it exits by itself (a leader that lost its
        lease exits, to come back as a follower), as a kubelet would.
        """
        while True:
            if self.current is not None and self.current.process.poll() is not None:
                self.current.log.close()
                self.exits += 1
                self.start()
            await asyncio.sleep(1)

    def kill(self) -> None:
        if self.current is not None and self.current.process.poll() is None:
            self.current.process.kill()
            self.current.process.wait(30)
            self.current.log.close()

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()


async def chaos(
    target: cluster.Cluster,
    operators: Operators,
    seconds: float,
    disruptions: list[Result],
    waves: list[Callable[[], Awaitable[None]]],
) -> None:
    """SIGKILL the operator every 2-5 s; restart the API server twice and etcd
    once. A wave of runs is submitted at the start and after each of the
    first restarts, so runs are in flight through every disruption.
    """
    plan = [(0.2 * seconds, "kube-apiserver"), (0.5 * seconds, "etcd"), (0.8 * seconds, "kube-apiserver")]
    started = time.monotonic()
    await waves.pop(0)()
    # Every planned restart happens, even if an earlier one took long.
    while (elapsed := time.monotonic() - started) < seconds or plan:
        if plan and elapsed >= plan[0][0]:
            _, component = plan.pop(0)
            at = time.monotonic()
            done = await asyncio.to_thread(target.hack, "restart", component, check=False)
            took = round(time.monotonic() - at, 1)
            disruptions.append(
                {"what": f"restart {component}", "at": at, "ok": done.returncode == 0, "took": took}
            )
            if waves:
                await waves.pop(0)()
            continue
        operators.kill()
        disruptions.append({"what": "SIGKILL operator", "at": time.monotonic()})
        operators.start()
        await asyncio.sleep(random.uniform(2, 5))


def recovery(disruptions: list[Result], progress: list[float]) -> list[float]:
    """Seconds from each disruption to the next progress the watches saw."""
    found = []
    for d in disruptions:
        later = [t for t in progress if t > d["at"]]
        if later:
            found.append(round(min(later) - d["at"], 2))
    return found


async def submit_wave(kube: Kube, path: str, batch: dict[str, str]) -> None:
    """Create these runs (name -> pipeline); the API server may be coming
    back from a restart, so each create is retried for a minute.
    """
    for name, pipeline in batch.items():
        for _ in range(120):
            try:
                await kube.create(path, run(name, pipeline))
                break
            except ApiError as error:
                if error.status == 409:
                    break
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.5)


async def measure(kubeconfig: str, target: cluster.Cluster, args: argparse.Namespace) -> Result:
    kube = Kube(load_endpoint(kubeconfig))
    namespace = f"chaos-{uuid.uuid4().hex[:5]}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    await kube.wait_for_object(f"/api/v1/namespaces/{namespace}/serviceaccounts", "default", True, 60)
    kinds = pipelines()
    for body, _ in kinds.values():
        await kube.create(f"{GROUP}/{namespace}/pipelines", body)
    observed = Observed()
    pod_path = f"/api/v1/namespaces/{namespace}/pods"
    run_path = f"{GROUP}/{namespace}/pipelineruns"
    ready = [asyncio.Event(), asyncio.Event()]
    watches = [
        asyncio.create_task(resilient_watch(kube, pod_path, observed.on_pod, ready[0])),
        asyncio.create_task(resilient_watch(kube, run_path, observed.on_run, ready[1])),
    ]
    for event in ready:
        await asyncio.wait_for(event.wait(), 60)
    operators = Operators(kubeconfig, args)
    operators.start()
    supervisor = asyncio.create_task(operators.supervise())
    names = list(kinds)
    runs = {f"{names[i % len(names)]}-{i:03d}": names[i % len(names)] for i in range(args.runs)}
    observed.expected = set(runs)
    disruptions: list[Result] = []
    started = time.monotonic()
    try:
        names_in_order = list(runs)
        thirds = [names_in_order[i::3] for i in range(3)]

        waves: list[Callable[[], Awaitable[None]]] = [
            partial(submit_wave, kube, run_path, {n: runs[n] for n in batch}) for batch in thirds
        ]
        await chaos(target, operators, args.chaos_seconds, disruptions, waves)
        chaos_ended = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(observed.all_done.wait(), args.timeout)
        finished_at = time.monotonic()
        # The watches may have missed events while the API server was down:
        # the final word is a list.
        final = await kube.request("GET", run_path)
        pods = await kube.request("GET", pod_path)
    finally:
        supervisor.cancel()
        operators.stop()
        for watch in watches:
            watch.cancel()
    for pod in pods.get("items") or ():
        observed.on_pod("ADDED", pod, time.monotonic())
    phases = {r["metadata"]["name"]: (r.get("status") or {}).get("phase") for r in final.get("items") or ()}
    limits = {"retried": {"load": 2}, "failing": {"load": 1}}
    attempts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run_name, task_name, attempt in observed.pods:
        attempts[(run_name, task_name)].add(attempt)
    over_retries = [
        f"{r}/{t}: {len(a)} attempts"
        for (r, t), a in attempts.items()
        if len(a) > limits.get(runs.get(r, ""), {}).get(t, 0) + 1
    ]
    result: Result = {
        "runs": args.runs,
        "chaos_seconds": args.chaos_seconds,
        "operator_starts": operators.starts,
        "operator_exits_of_its_own": operators.exits,
        "denied_calls": operators.denied_calls(),
        "disruptions": [
            {k: (round(v - started, 2) if k == "at" else v) for k, v in d.items()} for d in disruptions
        ],
        "runs_finished": sum(1 for n in runs if phases.get(n) in FINISHED),
        "runs_lost": sorted(n for n in runs if phases.get(n) not in FINISHED),
        "runs_wrong_outcome": sorted(
            n
            for n, kind in runs.items()
            if phases.get(n) in ("Succeeded", "Failed") and phases[n] != kinds[kind][1]
        ),
        "duplicate_pods": sorted(
            f"{k[0]}/{k[1]}#{k[2]}: {len(v)}" for k, v in observed.pods.items() if len(v) > 1
        ),
        "tasks_over_retries": sorted(over_retries),
        "seconds_to_finish_after_chaos": round(finished_at - chaos_ended, 1),
        "recovery_seconds": recovery(disruptions, observed.progress),
        "namespace": namespace,
    }
    with contextlib.suppress(ApiError):
        await kube.delete(f"/api/v1/namespaces/{namespace}")
    await kube.close()
    return result


def report(result: Result) -> str:
    rec = result["recovery_seconds"]
    restarts = sum(1 for d in result["disruptions"] if d["what"] != "SIGKILL operator")
    lines = [
        f"chaos: {result['runs']} runs, {result['chaos_seconds']} s of chaos, "
        f"operator started {result['operator_starts']} times, {restarts} control-plane restarts",
        f"runs finished            {result['runs_finished']} / {result['runs']}",
        f"API calls denied         {result['denied_calls']}   (the operator's logs)",
    ]
    for key in LOSSES:
        label = key.replace("_", " ")
        lines.append(f"{label:<25}{len(result[key])}   (target 0) {result[key][:5]}")
    lines += [
        f"finished {result['seconds_to_finish_after_chaos']} s after the chaos stopped",
        f"recovery: p50 {sorted(rec)[len(rec) // 2] if rec else '-'} s, max {max(rec) if rec else '-'} s "
        f"(from a disruption to the next pod created or run finished)",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--chaos-seconds", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=300, help="after the chaos, for the runs to finish")
    parser.add_argument("--cluster", choices=sorted(cluster.CLUSTERS), default="bench")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--operator-kubeconfig",
        default=None,
        help="the operator's credentials; default: the chart's ServiceAccount, installed here",
    )
    parser.add_argument("--as-admin", action="store_true", help="run the operator with admin credentials")
    parser.add_argument("--leader-namespace", default="default", help="where the operator's Lease lives")
    parser.add_argument("--log-dir", default=None, help="the operators' logs (default bench/results)")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class _Kubectl:
    """What the tests' installer needs of a client: kubectl as the admin."""

    kubectl_bin: str
    kubeconfig: str

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            input=stdin, capture_output=True, text=True, check=True,
        )  # fmt: skip


def install_chart_rbac(target: cluster.Cluster, kubeconfig: str) -> tuple[str, str]:
    """The chart's ServiceAccount and cluster-wide RBAC, as `helm install`
    makes them (the tests' installer, so both measure the same product):
    (a kubeconfig holding that account's token, the release namespace).
    """
    sys.path.insert(0, str(cluster.ROOT))
    from tests.integration.installed import helm_binary, install_rbac  # noqa: PLC0415 (needs the path above)

    admin = _Kubectl(target.kubectl(), kubeconfig)
    namespace = "sluice-chaos"
    manifest = admin.kubectl("create", "namespace", namespace, "--dry-run=client", "-o", "yaml").stdout
    admin.kubectl("apply", "-f", "-", stdin=manifest)
    installed = install_rbac(admin, helm_binary(admin.kubectl_bin), "sluice-chaos", namespace, RESULTS)
    return str(installed.kubeconfig), namespace


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = cluster.Cluster(args.cluster)
    kubeconfig = target.ensure_up()
    cluster.apply_crds(target.kubectl(), kubeconfig, cluster.ROOT)
    if args.operator_kubeconfig is None and not args.as_admin:
        args.operator_kubeconfig, args.leader_namespace = install_chart_rbac(target, kubeconfig)
        print(f"the operator runs as the chart's ServiceAccount (token in {args.operator_kubeconfig})")
    result = asyncio.run(measure(kubeconfig, target, args))
    result["machine"] = cluster.machine_facts(None)
    print(report(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or str(RESULTS / f"chaos-{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.json")
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(f"saved {out}")
    return 1 if any(result[key] for key in LOSSES) else 0


if __name__ == "__main__":
    sys.exit(main())
