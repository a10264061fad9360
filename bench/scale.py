#!/usr/bin/env python3
"""Scale: a 5,000-task run, 1,000 live runs beside 10,000 finished ones, and a
restart under that load (issue 14, item 4).

Scenarios (kwok cluster; simulated pods finish at once unless said), by name:
  big       one run of 5,000 tasks: 20 chains (3,998 tasks) and root -> 1,000
            parallel -> join. Reports wall time, reconcile passes (count, mean,
            p99 from the histogram), the run's object size at the end, and the
            operator's CPU per 1,000 tasks and peak RSS.
  many      10,000 one-task runs made to finish, then 1,000 runs held Running
            (a task of an hour). Reports the operator's RSS with all of them in
            the cluster, and its CPU per 1,000 tasks.
  restart   (after many, same namespace) a probe run's first task finishes
            while the operator is SIGKILLed; a new operator starts. Reports the
            seconds from its start to the probe's next pod, and to leading.

Every wait is on a watch with a deadline. The operator runs as this process's
child from the work tree (or --operator-rev), on the benchmark's own kwok
cluster, as bench/latency.py does. Figures are printed and saved as JSON in
bench/results/scale-<time>.json.

Usage: bench/scale.py [--scenarios big,many,restart] [--finished N] [--live N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from sluicebench import cluster, pyspy
from sluicebench.kube import ApiError, Kube, first_of, load_endpoint
from sluicebench.passes import pass_figures, scrape
from sluicebench.procstat import cpu_seconds, memory_kib, reset_peak_rss
from sluicebench.scenarios import pipeline_of as pipeline
from sluicebench.scenarios import run, task

RESULTS = cluster.ROOT / "bench" / "results"
RUNS = "/apis/sluice.dev/v1alpha1/namespaces/{ns}/pipelineruns"
PIPELINES = "/apis/sluice.dev/v1alpha1/namespaces/{ns}/pipelines"
PODS = "/api/v1/namespaces/{ns}/pods"
FINISHED = ("Succeeded", "Failed", "Cancelled")
RSS_TARGET_MIB = 200
RESTART_TARGET_S = 5.0
Result = dict[str, Any]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", default="big,many,restart")
    parser.add_argument("--finished", type=int, default=10_000, help="finished runs for many")
    parser.add_argument("--live", type=int, default=1_000, help="live runs for many and restart")
    parser.add_argument("--submit-concurrency", type=int, default=32)
    parser.add_argument("--workers", default="16")
    parser.add_argument("--operator-rev", default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the restarted operator until its next pod"
    )
    return parser.parse_args()


# --- objects --------------------------------------------------------------------------------


def big_tasks(chains: int = 20, chain_total: int = 3998, fan: int = 1000) -> list[dict[str, Any]]:
    """Chains totalling ``chain_total`` tasks, and root -> ``fan`` -> join."""
    tasks = []
    for c in range(chains):
        length = chain_total // chains + (1 if c < chain_total % chains else 0)
        tasks += [task(f"c{c}-{i}", *([f"c{c}-{i - 1}"] if i else [])) for i in range(length)]
    middle = [f"f{i}" for i in range(fan)]
    return [*tasks, task("root"), *(task(m, "root") for m in middle), task("join", *middle)]


# --- waiting and measuring ------------------------------------------------------------------


async def until(
    kube: Kube,
    path: str,
    done: Callable[[dict[str, dict[str, Any]]], bool],
    seconds: float,
    selector: str | None = None,
) -> None:
    """Watch the collection at ``path`` (filtered by a label ``selector``)
    until ``done(objects by name)`` holds.
    """
    objects: dict[str, dict[str, Any]] = {}
    reached = asyncio.Event()

    def on_event(kind: str, obj: dict[str, Any], _now: float) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            objects.pop(name, None)
        else:
            objects[name] = {"status": obj.get("status") or {}, "metadata": obj["metadata"]}
        if done(objects):
            reached.set()

    params = {"labelSelector": selector} if selector else None
    watcher = asyncio.create_task(kube.watch(path, on_event, params))
    try:
        async with asyncio.timeout(seconds):
            await first_of(reached.wait(), watcher)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def count_phase(phases: tuple[str, ...], want: int, prefix: str = "") -> Callable[[dict[str, Any]], bool]:
    def check(objects: dict[str, dict[str, Any]]) -> bool:
        hits = sum(
            1
            for name, obj in objects.items()
            if name.startswith(prefix) and (obj["status"].get("phase") in phases)
        )
        return hits >= want

    return check


async def submit(kube: Kube, ns: str, bodies: list[dict[str, Any]], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            await kube.create(RUNS.format(ns=ns), body)

    await asyncio.gather(*(one(body) for body in bodies))


def operator_sample(pid: int) -> tuple[float, dict[str, int]]:
    return cpu_seconds(pid), memory_kib(pid)


async def fresh_namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    await kube.wait_for_object(f"/api/v1/namespaces/{name}/serviceaccounts", "default", True, 60)
    return name


async def delete_namespace(kube: Kube, name: str, seconds: float) -> float:
    start = time.monotonic()
    await kube.delete(f"/api/v1/namespaces/{name}")
    await kube.wait_for_object("/api/v1/namespaces", name, False, seconds)
    return round(time.monotonic() - start, 1)


# --- scenarios ------------------------------------------------------------------------------


async def big(kube: Kube, operator: cluster.Operator, seconds: float) -> Result:
    ns = await fresh_namespace(kube, "big")
    tasks = big_tasks()
    body = pipeline("big", tasks)
    await kube.create(PIPELINES.format(ns=ns), body)
    reset_peak_rss(operator.pid)
    cpu0, _ = operator_sample(operator.pid)
    metrics0 = scrape(operator.metrics_port)
    start = time.monotonic()
    await kube.create(RUNS.format(ns=ns), run("big-1", "big"))
    await until(kube, RUNS.format(ns=ns), count_phase(FINISHED, 1), seconds)
    wall = time.monotonic() - start
    cpu1, memory = operator_sample(operator.pid)
    final = await kube.request("GET", f"{RUNS.format(ns=ns)}/big-1")
    result: Result = {
        "tasks": len(tasks),
        "phase": final["status"]["phase"],
        "progress": final["status"].get("progress"),
        "wall_seconds": round(wall, 1),
        "run_object_bytes": len(json.dumps(final, separators=(",", ":"))),
        "status_bytes": len(json.dumps(final["status"], separators=(",", ":"))),
        "pipeline_object_bytes": len(json.dumps(body, separators=(",", ":"))),
        "operator_cpu_seconds": round(cpu1 - cpu0, 2),
        "operator_cpu_s_per_1000_tasks": round(1000 * (cpu1 - cpu0) / len(tasks), 2),
        "operator_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
        "reconcile": pass_figures(metrics0, scrape(operator.metrics_port)),
    }
    result["cleanup_seconds"] = await delete_namespace(kube, ns, seconds)
    return result


async def many(kube: Kube, operator: cluster.Operator, args: argparse.Namespace) -> tuple[Result, str]:
    """Leaves its namespace (1,000 live runs) for ``restart``."""
    ns = await fresh_namespace(kube, "many")
    await kube.create(PIPELINES.format(ns=ns), pipeline("once", [task("only")]))
    await kube.create(
        PIPELINES.format(ns=ns), pipeline("hold", [task("wait", duration="1h"), task("then", "wait")])
    )
    cpu0, _ = operator_sample(operator.pid)
    start = time.monotonic()
    await submit(kube, ns, [run(f"f{i:05d}", "once") for i in range(args.finished)], args.submit_concurrency)
    await until(kube, RUNS.format(ns=ns), count_phase(FINISHED, args.finished, "f"), args.timeout)
    finished_wall = time.monotonic() - start
    cpu1, _ = operator_sample(operator.pid)
    await submit(kube, ns, [run(f"l{i:04d}", "hold") for i in range(args.live)], args.submit_concurrency)
    await until(kube, RUNS.format(ns=ns), count_phase(("Running",), args.live, "l"), args.timeout)
    await until(
        kube,
        PODS.format(ns=ns),
        lambda pods: sum(1 for p in pods.values() if p["status"].get("phase") == "Running") >= args.live,
        args.timeout,
    )
    cpu2, memory = operator_sample(operator.pid)
    tasks = args.finished + args.live
    return {
        "finished_runs": args.finished,
        "live_runs": args.live,
        "seconds_to_finish_the_finished_runs": round(finished_wall, 1),
        "operator_cpu_seconds": round(cpu2 - cpu0, 2),
        "operator_cpu_s_per_1000_tasks": round(1000 * (cpu1 - cpu0) / args.finished, 2),
        "operator_cpu_s_per_1000_tasks_started_live": round(1000 * (cpu2 - cpu1) / args.live, 2),
        "operator_rss_mib": round(memory.get("VmRSS", 0) / 1024, 1),
        "operator_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
        "tasks": tasks,
    }, ns


async def restart(
    kube: Kube,
    operator: cluster.Operator,
    ns: str,
    start_operator: Callable[[str | None], cluster.Operator],
    seconds: float,
    profile: bool = False,
    same_pod: bool = True,
) -> tuple[Result, cluster.Operator]:
    """SIGKILL the operator while a probe run's first task runs, and start
    another once that task has finished. ``same_pod``: as its container
    restarting (the same identity takes its own lease back at once);
    otherwise as a new replica, which must first wait out the dead one's lease.
    """
    probe_run = "probe-restart" if same_pod else "probe-failover"
    with contextlib.suppress(ApiError):  # made by the first of the two
        probe_pipeline = pipeline("probe", [task("a", duration="6s"), task("b", "a")])
        await kube.create(PIPELINES.format(ns=ns), probe_pipeline)
    await kube.create(RUNS.format(ns=ns), run(probe_run, "probe"))

    def probe_pod(name: str, phase: str | None = None) -> Callable[[dict[str, Any]], bool]:
        def check(pods: dict[str, dict[str, Any]]) -> bool:
            return any(
                p["metadata"].get("labels", {}).get("sluice.dev/run") == probe_run
                and p["metadata"].get("labels", {}).get("sluice.dev/task") == name
                and (phase is None or p["status"].get("phase") == phase)
                for p in pods.values()
            )

        return check

    # Only the probe's pods: listing 11,000 pods would time the benchmark's own list.
    probe = f"sluice.dev/run={probe_run}"
    await until(kube, PODS.format(ns=ns), probe_pod("a", "Running"), seconds, probe)
    operator.process.send_signal(signal.SIGKILL)
    operator.process.wait(timeout=30)
    operator.log.close()
    await until(kube, PODS.format(ns=ns), probe_pod("a", "Succeeded"), seconds, probe)
    started = time.monotonic()
    successor = start_operator(operator.identity if same_pod else None)
    out = RESULTS / "profile-restart.txt"
    recorder = pyspy.Recorder(successor.pid, out, int(seconds)) if profile else None
    lease = successor.LEASE.rsplit("/", 1)
    leading = asyncio.create_task(
        kube.wait_for_object(lease[0], lease[1], True, seconds, predicate=successor.is_leader)
    )
    await until(kube, PODS.format(ns=ns), probe_pod("b"), seconds, probe)
    to_pod = time.monotonic() - started
    if recorder is not None:
        recorder.stop()
        print(pyspy.report(pyspy.parse(out.read_text()), top=30), flush=True)
    await leading
    _, memory = operator_sample(successor.pid)
    log = successor.log.name
    led = _lead_seconds(pathlib.Path(log))
    return {
        # A SIGKILLed leader's lease must expire before anyone else leads
        # (SLUICE_LEASE_SECONDS, 4 s here; 15 s by default): that wait is
        # safety, not start-up cost, so both figures are given.
        "seconds_from_start_to_next_pod": round(to_pod, 2),
        "seconds_from_leading_to_next_pod": round(to_pod - led, 2) if led is not None else None,
        "seconds_from_start_to_leading": round(led, 2) if led is not None else None,
        "same_identity": same_pod,
        "target_seconds": RESTART_TARGET_S,
        "operator_rss_mib_after": round(memory.get("VmRSS", 0) / 1024, 1),
    }, successor


def _lead_seconds(log: pathlib.Path) -> float | None:
    """Seconds from the operator's first log line to "is the leader" (its own clock)."""
    stamps = []
    for line in log.read_text().splitlines():
        match = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", line)
        if match:
            stamps.append(
                (
                    time.mktime(time.strptime(match[1][:19], "%Y-%m-%d %H:%M:%S"))
                    + int(match[1][20:]) / 1000,
                    line,
                )
            )
    first = stamps[0][0] if stamps else None
    lead = next((t for t, line in stamps if "is the leader" in line), None)
    return lead - first if first is not None and lead is not None else None


async def wait_leader(kube: Kube, operator: cluster.Operator) -> None:
    collection, name = operator.LEASE.rsplit("/", 1)
    await kube.wait_for_object(collection, name, True, 60, predicate=operator.is_leader)


# --- main -----------------------------------------------------------------------------------


async def measure(kubeconfig: str, args: argparse.Namespace, tree: pathlib.Path) -> Result:
    kube = Kube(load_endpoint(kubeconfig))
    log = cluster.ROOT / "bench" / "operator.log"

    def start_operator(identity: str | None = None) -> cluster.Operator:
        return cluster.Operator(
            tree, kubeconfig, args.workers, "0", log, metrics_port=cluster.free_port(), identity=identity
        )

    operator = start_operator()
    results: Result = {}
    wanted = args.scenarios.split(",")
    try:
        await wait_leader(kube, operator)
        if "big" in wanted:
            print("big: one run of 5,000 tasks ...", flush=True)
            results["big"] = await big(kube, operator, args.timeout)
            print(f"  {results['big']}", flush=True)
        if "many" in wanted or "restart" in wanted:
            if "big" in wanted:
                # Its own operator process: RSS is a high-water mark, and the
                # 5,000-task run's would otherwise be read as this one's.
                operator.stop()
                operator = start_operator()
                await wait_leader(kube, operator)
            print(f"many: {args.finished} finished runs, then {args.live} live ones ...", flush=True)
            results["many"], ns = await many(kube, operator, args)
            print(f"  {results['many']}", flush=True)
            if "restart" in wanted:
                print("restart: SIGKILL the operator, its container restarts ...", flush=True)
                results["restart"], operator = await restart(
                    kube, operator, ns, start_operator, args.timeout, args.profile
                )
                print(f"  {results['restart']}", flush=True)
                print("failover: SIGKILL the operator, a new replica takes over ...", flush=True)
                results["failover"], operator = await restart(
                    kube, operator, ns, start_operator, args.timeout, same_pod=False
                )
                print(f"  {results['failover']}", flush=True)
            results["many"]["cleanup_seconds"] = await delete_namespace(kube, ns, args.timeout)
    finally:
        operator.stop()
        await kube.close()
    return results


def report(results: Result) -> None:
    print("\nscale (issue 14, item 4)")
    if b := results.get("big"):
        passes = b["reconcile"]
        print(f"  5,000-task run: {b['phase']} {b['progress']} in {b['wall_seconds']} s")
        print(
            f"  {passes['passes']} passes, mean {passes['mean_ms']} ms, p99 ≤ {passes['p99_at_most_s']} s; "
            f"run object {b['run_object_bytes'] / 1e6:.2f} MB (status {b['status_bytes'] / 1e6:.2f} MB)"
        )
        print(
            f"    {b['operator_cpu_s_per_1000_tasks']} operator CPU s per 1,000 tasks; "
            f"peak RSS {b['operator_peak_rss_mib']} MiB"
        )
    if m := results.get("many"):
        verdict = "PASS" if m["operator_rss_mib"] < RSS_TARGET_MIB else "MISS"
        print(
            f"  {m['live_runs']} live + {m['finished_runs']} finished runs: RSS {m['operator_rss_mib']} MiB "
            f"(target < {RSS_TARGET_MIB}: {verdict})"
        )
        print(f"    {m['operator_cpu_s_per_1000_tasks']} operator CPU s per 1,000 one-task runs")
    if r := results.get("restart"):
        verdict = "PASS" if r["seconds_from_start_to_next_pod"] < RESTART_TARGET_S else "MISS"
        print(
            f"  container restart with the live runs: next pod {r['seconds_from_start_to_next_pod']} s "
            f"after start (target < {RESTART_TARGET_S}: {verdict}); leading "
            f"{r['seconds_from_start_to_leading']} s after start"
        )
    if r := results.get("failover"):
        print(
            f"  new replica with the live runs: next pod {r['seconds_from_start_to_next_pod']} s "
            "after start, "
            f"{r['seconds_from_leading_to_next_pod']} s after leading; the dead leader's lease "
            f"(SLUICE_LEASE_SECONDS=4 here) taken over {r['seconds_from_start_to_leading']} s after start"
        )


def main() -> None:
    args = parse_args()
    bench_cluster = cluster.Cluster("bench")
    kubeconfig = bench_cluster.ensure_up()
    if args.operator_rev:
        tree, sha = cluster.export_tree(args.operator_rev)
    else:
        tree, sha = cluster.ROOT, cluster.git("rev-parse", "HEAD")
    cluster.apply_crds(bench_cluster.kubectl(), kubeconfig, tree)
    results = asyncio.run(measure(kubeconfig, args, tree))
    report(results)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document = {
        "benchmark": "scale (issue 14, item 4)",
        "date": stamp,
        "command": " ".join(sys.argv),
        "machine": cluster.machine_facts(sha),
        "settings": {"workers": int(args.workers), "finished": args.finished, "live": args.live},
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scale-{stamp}.json"
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"saved {out.relative_to(cluster.ROOT)}")


if __name__ == "__main__":
    main()
