#!/usr/bin/env python3
"""Step latency as users feel it: from a task's pod succeeding to its dependent's pod existing.

For every DAG edge, both ends are timed by this process from one pod watch
(monotonic clock at event receipt): the upstream pod reaching Succeeded, and
the downstream task's pod being created. When the operator runs each attempt
as a batch/v1 Job, a Job watch in the same process splits the edge in two
hops: pod Succeeded -> Job created (the operator) and Job created -> pod
created (the Job controller). When it creates pods itself, the operator hop
is the whole edge and the Job-controller hop is absent.

Scenarios (kwok cluster; simulated pods finish at once), by name:
  chain20     one run of a 20-task chain
  runs50      50 runs of a 5-task chain, submitted together (also runs200, runs1000)
  fanout100   one run of root -> 100 parallel tasks -> join (also fanout1000)
  matrix1000  the same, the middle one task fanned out by a matrix to 1,000 instances
Any chainN, runsN, fanoutN or matrixN works. Default: chain20,runs50,runs200,fanout100;
the 1000 ones need --big or naming them. Each scenario gets a fresh
namespace, deleted (and waited for) before the next one starts.

Per scenario: p50/p90/p99/max of pod-to-pod and of each hop, the operator's
CPU per task and its memory. The API server's ceiling (plain pod creates
from one client) is measured first, before the operator starts, and again
right before and right after each fan-out scenario (the operator idle: its
pod watch selects task pods only, so it never sees the plain ones). Each
fan-out's creation rate is given as a fraction of the mean of the two
ceilings around it, and the target is judged on the median over three or
more repetitions: on this shared 2-core machine two ceilings measured back
to back, nothing else running, differ by up to a third, so a single ratio
measures that noise as much as the operator.
Figures are printed beside the targets and saved as JSON in bench/results/.

The operator runs as this process's child, from the work tree or, with
--operator-rev REV, from a `git archive` of REV (to measure a commit while the
work tree is being edited). The cluster is the benchmark's own kwok cluster
(hack/cluster with its own state dir and ports, brought up if need be), or
the tests' with --cluster tests, or $KUBECONFIG's.

Usage: bench/latency.py [--scenarios a,b] [--big] [--repeat N] [--profile [SCENARIO]]
                        [--workers N] [--qps Q] [--out FILE] [--cluster bench|tests]
                        [--operator-rev REV] [--ceiling-pods N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import Any

# Run as a script: bench/ is sys.path[0], so the helpers import as a package.
from sluicebench import cluster, pyspy, report, scenarios, stats, timeline
from sluicebench.kube import ApiError, Handler, Kube, first_of, load_endpoint
from sluicebench.passes import pass_figures, scrape
from sluicebench.procstat import CpuTrace, Sample, cpu_seconds, memory_kib, reset_peak_rss
from sluicebench.scenarios import Scenario
from sluicebench.timeline import Timeline

RESULTS = cluster.ROOT / "bench" / "results"
GROUP = "/apis/sluice.dev/v1alpha1/namespaces"
Result = dict[str, Any]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", default=None, help="comma-separated, e.g. chain20,runs50,fanout100")
    parser.add_argument("--big", action="store_true", help="add runs1000 and fanout1000 to the default set")
    parser.add_argument("--repeat", type=int, default=1, help="run each runsN scenario N times (noise)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="runs50",
        default=None,
        metavar="SCENARIO",
        help="py-spy the operator during one scenario (default runs50)",
    )
    parser.add_argument("--profile-seconds", type=int, default=300, help="py-spy's -d (stopped at the end)")
    parser.add_argument("--workers", default="16", help="operator's SLUICE_WORKERS")
    parser.add_argument("--qps", default="0", help="operator's SLUICE_API_QPS (0: no client-side limit)")
    parser.add_argument("--out", default=None, help="JSON file (default bench/results/latency-<time>.json)")
    parser.add_argument("--cluster", choices=sorted(cluster.CLUSTERS), default="bench")
    parser.add_argument(
        "--operator-rev",
        default=None,
        help="run the operator and CRDs of this commit (git archive), not the work tree",
    )
    parser.add_argument("--ceiling-pods", type=int, default=1000, help="0: skip the ceilings")
    parser.add_argument(
        "--ceiling-concurrency",
        type=int,
        default=64,
        help="creates in flight; 64 = the operator's connection pool (it creates a pass's pods at once)",
    )
    parser.add_argument("--submit-concurrency", type=int, default=16, help="parallel PipelineRun creates")
    parser.add_argument("--timeout", type=float, default=900, help="deadline per scenario, seconds")
    return parser.parse_args(argv)


def planned(args: argparse.Namespace) -> list[tuple[Scenario, int | None]]:
    """Scenarios in order, with a repetition number when --repeat applies."""
    names = (
        args.scenarios.split(",")
        if args.scenarios
        else scenarios.DEFAULT + (scenarios.BIG if args.big else [])
    )
    plan: list[tuple[Scenario, int | None]] = []
    for name in (n.strip() for n in names if n.strip()):
        scenario = scenarios.parse(name)
        if scenario.repeatable and args.repeat > 1:
            plan += [(scenario, i + 1) for i in range(args.repeat)]
        else:
            plan.append((scenario, None))
    return plan


# --- namespaces ------------------------------------------------------------------


async def fresh_namespace(kube: Kube, prefix: str) -> str:
    """A new namespace whose default service account exists (pods are refused before)."""
    name = f"bench-{prefix}-{uuid.uuid4().hex[:5]}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    await kube.wait_for_object(f"/api/v1/namespaces/{name}/serviceaccounts", "default", True, 60)
    return name


async def delete_namespace(kube: Kube, name: str, seconds: float = 600) -> float:
    """Delete and wait until it is gone, so that its deletion (thousands of
    watch events for the operator) does not overlap the next scenario.
    """
    started = time.monotonic()
    await kube.delete(f"/api/v1/namespaces/{name}")
    await kube.wait_for_object("/api/v1/namespaces", name, False, seconds)
    return round(time.monotonic() - started, 2)


async def operator_idle(pid: int, seconds: float = 30, window: float = 0.5, busy: float = 0.02) -> float:
    """Wait until the operator uses under ``busy`` of a core over ``window``:
    it may still be digesting the last namespace's deletion events.
    """
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)  # a measuring window, not a synchronisation
        if cpu_seconds(pid) - before < busy * window:
            break
    return round(time.monotonic() - started, 2)


# --- watches ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def watching(kube: Kube, watches: Sequence[tuple[str, Handler]]) -> AsyncIterator[None]:
    """Run the watches for the body's duration, entering only once each has
    listed, so nothing the body creates can be missed.
    """
    ready = [asyncio.Event() for _ in watches]
    tasks = [
        asyncio.create_task(kube.watch(path, handle, ready=event))
        for (path, handle), event in zip(watches, ready, strict=True)
    ]
    try:
        async with asyncio.timeout(60):
            for event, task in zip(ready, tasks, strict=True):
                await first_of(event.wait(), task)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def tracing(trace: CpuTrace) -> AsyncIterator[CpuTrace]:
    """Sample ``trace`` in the background for the body's duration (and once
    more at the end, so the window's last moment is covered).
    """

    async def sample() -> None:
        while True:
            trace.take()
            await asyncio.sleep(trace.interval)

    task = asyncio.create_task(sample())
    try:
        yield trace
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        trace.take()


def window_cores(trace: CpuTrace, times: list[float]) -> Result:
    """The operator's and the machine's busy cores from the first to the last of ``times``."""
    cores = trace.cores_between(min(times), max(times)) if len(times) > 1 else None
    if cores is None:
        return {"operator_cores_while_creating": None, "machine_busy_cores_while_creating": None}
    operator, machine = cores
    return {
        "operator_cores_while_creating": round(operator, 2) if trace.pid is not None else None,
        "machine_busy_cores_while_creating": round(machine, 2),
        "cores_by_process_while_creating": trace.others_between(min(times), max(times)),
    }


async def bounded(concurrency: int, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[float]:
    """Run ``jobs`` with at most ``concurrency`` in flight; each one's latency in s."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            started = time.monotonic()
            await job()
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(one(job) for job in jobs))
    return latencies


# --- the API server's ceiling ----------------------------------------------------------


async def measure_ceiling(
    kube: Kube, pods: int, concurrency: int, seconds: float, processes: dict[str, int]
) -> Result:
    """Plain pod creates from this one client, while no operator works (it
    neither competes for CPU nor sees the pods): the most pods per second
    this API server, scheduler, garbage collector and kwok take on this
    machine, for pods that live a task pod's life (``scenarios.plain_pod``).
    ``processes`` (name: pid) get their cores in the window reported too.
    """
    namespace = await fresh_namespace(kube, "ceiling")
    seen: dict[str, float] = {}
    all_seen = asyncio.Event()

    def on_pod(kind: str, obj: dict[str, Any], now: float) -> None:
        if kind != "DELETED":
            seen.setdefault(obj["metadata"]["name"], now)
        if len(seen) >= pods:
            all_seen.set()

    path = f"/api/v1/namespaces/{namespace}/pods"
    result: Result = {"pods": pods, "concurrency": concurrency, "namespace": namespace}
    try:
        async with watching(kube, [(path, on_pod)]), tracing(CpuTrace(None, others=processes)) as trace:
            owner = await kube.create(
                f"/apis/batch/v1/namespaces/{namespace}/jobs", scenarios.idle_owner("owner")
            )
            bodies = [scenarios.plain_pod(f"ceiling-{i:05d}", owner) for i in range(pods)]
            started = time.monotonic()
            jobs = [partial(kube.create, path, body) for body in bodies]
            latencies = await bounded(concurrency, jobs)
            elapsed = time.monotonic() - started
            await asyncio.wait_for(all_seen.wait(), seconds)
        rate = timeline.creation_rate(list(seen.values()))
        result |= {
            "pods_per_second": round(rate or 0, 1),
            "client_pods_per_second": round(pods / elapsed, 1),
            "create_ms": stats.summary(latencies),
        } | window_cores(trace, list(seen.values()))
    except (TimeoutError, ApiError) as error:
        result["error"] = str(error) or type(error).__name__
    finally:
        result["cleanup_seconds"] = await delete_namespace(kube, namespace)
    return result


# --- one scenario ------------------------------------------------------------------


def finished(tl: Timeline, runs: list[str], tasks: int) -> bool:
    """Every run ended, and (unless one failed) every task's pod was seen Succeeded."""
    if any(tl.run_phase.get(run) not in timeline.FINISHED for run in runs):
        return False
    return len(tl.pod_succeeded) >= tasks or "Failed" in tl.run_phase.values()


async def submit(kube: Kube, namespace: str, scenario: Scenario, runs: list[str], concurrency: int) -> None:
    """The Pipeline, then all runs at once, ``concurrency`` creates in flight."""
    await kube.create(f"{GROUP}/{namespace}/pipelines", scenarios.pipeline("p", scenario))
    path = f"{GROUP}/{namespace}/pipelineruns"
    await bounded(concurrency, [partial(kube.create, path, scenarios.run(name, "p")) for name in runs])


def edge_rows(edges: list[timeline.Edge]) -> list[list[Any]]:
    """Every edge, for the JSON: run, parent, child, pod-to-pod, operator, Job controller (ms)."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return [
        [e.run, e.parent, e.child, ms(e.pod_to_pod), ms(e.operator_hop), ms(e.job_controller_hop)]
        for e in edges
    ]


def fanout_figures(tl: Timeline, scenario: Scenario, run: str, trace: CpuTrace) -> Result | None:
    """Time from root succeeded to the last of the parallel pods, and the rate
    those pods were created at (first to last); ``bracket`` adds the ceiling.
    """
    created = [tl.pod_created[(run, w)] for w in scenario.fanout if (run, w) in tl.pod_created]
    root = tl.pod_succeeded.get((run, "root"))
    if not scenario.fanout or root is None or not created:
        return None
    rate = timeline.creation_rate(created)
    jobs = [tl.job_created[(run, w)] for w in scenario.fanout if (run, w) in tl.job_created]
    job_rate = timeline.creation_rate(jobs)
    return {
        "pods": len(created),
        "time_to_last_pod_ms": round((max(created) - root) * 1000, 1),
        "time_to_last_job_ms": round((max(jobs) - root) * 1000, 1) if jobs else None,
        "pods_per_second": round(rate, 1) if rate else None,
        "jobs_per_second": round(job_rate, 1) if job_rate else None,
    } | window_cores(trace, created)


KWOK_IDLE_CORES = 0.05


def bracket(result: Result, before: Result, after: Result) -> None:
    """The fan-out's rate against the mean of the ceilings measured right
    before and right after it. Back-to-back ceilings on this 2-core machine,
    nothing else running, differ by up to a third (the cluster's components
    take the same cores each time; how much of that goes to creates varies),
    so one neighbour alone would often measure that noise, not the operator.
    """
    result["ceiling"], result["ceiling_after"] = before, after
    rates = [c.get("pods_per_second") for c in (before, after)]
    fan = result.get("fanout")
    if fan is None or not fan.get("pods_per_second") or not all(rates):
        return
    mean = sum(float(r) for r in rates if r) / 2
    fan["ceiling_pods_per_second"] = round(mean, 1)
    fan["fraction_of_ceiling"] = round(float(fan["pods_per_second"]) / mean, 3)
    # kwok sometimes stalls for seconds (its queue busy with the last
    # namespace's deletions): pods created then are not run, the window's
    # API server does far less work per pod, and its rate says nothing of
    # the operator. Such a sample is kept in the JSON but not judged.
    idle = [
        label
        for label, window in (("ceiling before", before), ("fan-out", fan), ("ceiling after", after))
        if (window.get("cores_by_process_while_creating") or {}).get("kwok", 1.0) < KWOK_IDLE_CORES
    ]
    if idle:
        fan["not_judged"] = f"kwok ran no pods in the {' and '.join(idle)} window"


def operator_figures(pid: int, before: Sample, after: Sample, tasks: int, peak_reset: bool) -> Result:
    cpu = after.operator_cpu - before.operator_cpu
    memory = memory_kib(pid)
    return {
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_task": round(1000 * cpu / tasks, 2),
        "cpu_cores_while_running": round(cpu / (after.wall - before.wall), 2),
        "peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
        "peak_rss_is_this_scenarios": peak_reset,
        "rss_mib": round(memory["VmRSS"] / 1024, 1),
    }


async def wait_done(tl: Timeline, scenario: Scenario, runs: list[str], seconds: float) -> str | None:
    """Wait for the scenario to end; None if it ended well, else what went wrong."""
    try:
        await tl.wait_until(lambda: finished(tl, runs, scenario.tasks), seconds)
    except TimeoutError:
        ended = sum(p in timeline.FINISHED for p in tl.run_phase.values())
        return (
            f"not done in {seconds:.0f}s: {len(tl.pod_succeeded)}/{scenario.tasks} pods "
            f"succeeded, {ended}/{scenario.runs} runs finished"
        )
    failed = sorted(r for r, phase in tl.run_phase.items() if phase == "Failed")
    return f"{len(failed)} run(s) failed, e.g. {failed[0]}" if failed else None


def edge_figures(tl: Timeline, scenario: Scenario, runs: list[str]) -> Result:
    """Pod-to-pod and its hops over every edge; Job mode if any Job was seen."""
    found = timeline.edges(tl, runs, scenario.parents)
    return {
        "mode": "jobs" if tl.job_created else "pods",
        "edges": len(found),
        "pod_to_pod": stats.summary([e.pod_to_pod for e in found]),
        "operator_hop": stats.summary([e.operator_hop for e in found]),
        "job_controller_hop": stats.summary(
            [e.job_controller_hop for e in found if e.job_controller_hop is not None]
        ),
        "pods_seen": tl.pods_seen,
        "jobs_seen": tl.jobs_seen,
        "watch_events": tl.events,
        "edges_ms": edge_rows(found),
    }


def load_figures(pid: int, before: Sample, after: Sample, own: float, tasks: int, peak_reset: bool) -> Result:
    """What the scenario cost the operator, and how loaded the machine was meanwhile."""
    wall = after.wall - before.wall
    return {
        "wall_seconds": round(wall, 2),
        "operator": operator_figures(pid, before, after, tasks, peak_reset),
        "machine_busy_cores": round((after.machine_busy - before.machine_busy) / wall, 2),
        # This process's own share of that (watch decoding, creates): noise it adds.
        "bench_cpu_seconds": round(own, 2),
    }


async def run_scenario(
    kube: Kube,
    operator: cluster.Operator,
    scenario: Scenario,
    repetition: int | None,
    args: argparse.Namespace,
    profile: bool,
) -> Result:
    """Submit the scenario's runs into a fresh namespace, wait for them, measure, clean up."""
    namespace = await fresh_namespace(kube, scenario.name)
    runs = [f"r{i:04d}" for i in range(scenario.runs)]
    tl = Timeline()
    result: Result = {
        "scenario": scenario.name,
        "repetition": repetition,
        "profiled": profile,
        "namespace": namespace,
        "runs": scenario.runs,
        "tasks": scenario.tasks,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    watches: list[tuple[str, Handler]] = [
        (f"/api/v1/namespaces/{namespace}/pods", tl.on_pod),
        (f"/apis/batch/v1/namespaces/{namespace}/jobs", tl.on_job),
        (f"{GROUP}/{namespace}/pipelineruns", tl.on_run),
    ]
    spy: pyspy.Recorder | None = None
    try:
        async with watching(kube, watches), tracing(CpuTrace(operator.pid, others=args.processes)) as trace:
            peak_reset = reset_peak_rss(operator.pid)
            before = Sample.take(operator.pid)
            passes_before = scrape(operator.metrics_port)
            own_before = time.process_time()
            if profile:
                out = RESULTS / f"profile-{scenario.name}.txt"
                spy = pyspy.Recorder(operator.pid, out, args.profile_seconds)
                result["profile_command"] = " ".join(spy.command)
            await submit(kube, namespace, scenario, runs, args.submit_concurrency)
            result["submit_seconds"] = round(time.monotonic() - before.wall, 2)
            result["error"] = await wait_done(tl, scenario, runs, args.timeout)
            after = Sample.take(operator.pid)
            passes = pass_figures(passes_before, scrape(operator.metrics_port))
            own = time.process_time() - own_before
        if spy is not None:
            result["profile_stderr"] = spy.stop().strip()[-500:]
        result |= edge_figures(tl, scenario, runs)
        result |= load_figures(operator.pid, before, after, own, scenario.tasks, peak_reset)
        result["fanout"] = fanout_figures(tl, scenario, runs[0], trace)
        result["reconcile"] = passes | {"passes_per_task": round(passes["passes"] / scenario.tasks, 2)}
    except ApiError as error:
        # E.g. a Pipeline the API refuses (the CRD caps tasks per pipeline).
        result |= {"error": str(error), "mode": "-", "edges": 0}
    finally:
        if spy is not None and spy.process.poll() is None:
            spy.stop()
        result["cleanup_seconds"] = await delete_namespace(kube, namespace)
        result["operator_idle_wait_seconds"] = await operator_idle(operator.pid)
    return result


# --- the whole invocation -------------------------------------------------------------


async def wait_leader(kube: Kube, operator: cluster.Operator, seconds: float = 60) -> None:
    """Until our operator holds the lease, the scenarios would measure nothing
    (or another replica: say so rather than report its figures as ours).
    """
    name = operator.LEASE.rsplit("/", 1)[1]
    collection = operator.LEASE.rsplit("/", 1)[0]
    try:
        await kube.wait_for_object(collection, name, True, seconds, predicate=operator.is_leader)
    except TimeoutError:
        lease = await kube.get_optional(operator.LEASE)
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
        raise SystemExit(
            f"the bench operator did not become leader in {seconds:.0f}s (holder: {holder})"
        ) from None


def print_profile(results: list[Result]) -> None:
    for r in results:
        if r.get("profiled"):
            path = RESULTS / f"profile-{r['scenario']}.txt"
            if not path.exists():
                print(f"\nprofile of {r['scenario']}: no output ({r.get('profile_stderr')})")
                continue
            parsed = pyspy.parse(path.read_text())
            print(f"\nprofile of the operator during {r['scenario']} ({path.relative_to(cluster.ROOT)})")
            print(pyspy.report(parsed))
            r["profile_file"] = str(path.relative_to(cluster.ROOT))
            r["profile_top_own"] = parsed.own.most_common(25)
            r["profile_categories"] = dict(parsed.categories)


@contextlib.contextmanager
def operator_process(kubeconfig: str, args: argparse.Namespace) -> Iterator[cluster.Operator]:
    log = cluster.ROOT / "bench" / "operator.log"
    port = cluster.free_port()
    operator = cluster.Operator(args.tree, kubeconfig, args.workers, args.qps, log, metrics_port=port)
    try:
        yield operator
    finally:
        operator.stop()


async def measure(kubeconfig: str, args: argparse.Namespace) -> tuple[Result | None, list[Result]]:
    """The ceiling (before the operator exists), then every planned scenario."""
    kube = Kube(load_endpoint(kubeconfig))
    results: list[Result] = []
    ceiling = None
    try:
        if args.ceiling_pods > 0:
            print(f"ceiling: {args.ceiling_pods} plain pods ...", flush=True)
            ceiling = await measure_ceiling(
                kube, args.ceiling_pods, args.ceiling_concurrency, args.timeout, args.processes
            )
            print(report.ceiling_line(ceiling), flush=True)

        async def ceiling_now(what: str) -> Result:
            print(f"{what} ...", flush=True)
            found = await measure_ceiling(
                kube, args.ceiling_pods, args.ceiling_concurrency, args.timeout, args.processes
            )
            print("  " + report.ceiling_line(found), flush=True)
            return found

        with operator_process(kubeconfig, args) as operator:
            await wait_leader(kube, operator)
            after_last_fanout: Result | None = None
            profiled = False
            for scenario, repetition in planned(args):
                profile = args.profile == scenario.name and not profiled
                profiled |= profile
                label = scenario.name + (f"#{repetition}" if repetition else "")
                before = None
                if scenario.fanout and args.ceiling_pods > 0:
                    # The previous fan-out's ceiling after is this one's before
                    # when nothing ran in between: C F C F C, not C F C C F C.
                    before = after_last_fanout or await ceiling_now(f"{label}: the ceiling before it")
                print(f"{label}: {scenario.runs} run(s), {scenario.tasks} tasks ...", flush=True)
                result = await run_scenario(kube, operator, scenario, repetition, args, profile)
                summary = result.get("pod_to_pod") or {}
                print(
                    f"  pod->pod p50 {summary.get('p50_ms')} p99 {summary.get('p99_ms')} ms, "
                    f"wall {result.get('wall_seconds')} s, cleanup {result.get('cleanup_seconds')} s"
                    + (f"  ERROR {result['error']}" if result.get("error") else ""),
                    flush=True,
                )
                after_last_fanout = None
                if before is not None:
                    after_last_fanout = await ceiling_now(f"{label}: the ceiling after it")
                    bracket(result, before, after_last_fanout)
                results.append(result)
    finally:
        await kube.close()
    return ceiling, results


def save(
    args: argparse.Namespace,
    kubeconfig: str,
    machine: Result,
    ceiling: Result | None,
    results: list[Result],
) -> pathlib.Path:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    found = report.verdicts(results)
    document = {
        "benchmark": "pod-to-pod step latency (issue 14)",
        "date": stamp,
        "command": " ".join(sys.argv),
        "machine": machine,
        "cluster": {"kubeconfig": kubeconfig, "which": args.cluster},
        "settings": {
            "workers": int(args.workers),
            "api_qps": float(args.qps),
            "submit_concurrency": args.submit_concurrency,
            "ceiling_concurrency": args.ceiling_concurrency,
            "repeat": args.repeat,
            "profile": args.profile,
        },
        "ceiling": ceiling,
        "targets": [v.__dict__ for v in found],
        "results": results,
    }
    out = pathlib.Path(args.out) if args.out else RESULTS / f"latency-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    return out


def main() -> None:
    args = parse_args()
    planned(args)  # fail on a bad scenario name before touching the cluster
    args.tree, args.operator_sha = (
        cluster.export_tree(args.operator_rev) if args.operator_rev else (cluster.ROOT, None)
    )
    machine = cluster.machine_facts(args.operator_sha)  # now, for the load average before we add ours
    target = cluster.Cluster(args.cluster)
    kubeconfig = os.environ.get("KUBECONFIG") or target.ensure_up()
    # Whose CPU each window's busy cores were: the cluster's components (ours
    # only) and this benchmark process.
    args.processes = ({} if os.environ.get("KUBECONFIG") else target.component_pids()) | {
        "bench": os.getpid()
    }
    cluster.apply_crds(target.kubectl(), kubeconfig, args.tree)
    ceiling, results = asyncio.run(measure(kubeconfig, args))
    print()
    print(report.ceiling_line(ceiling))
    print()
    print(report.latency_table(results))
    print()
    print(report.cost_table(results))
    print_profile(results)
    print()
    print(report.targets_table(report.verdicts(results)))
    out = save(args, kubeconfig, machine, ceiling, results)
    print(f"\nsaved {out.relative_to(cluster.ROOT) if out.is_relative_to(cluster.ROOT) else out}")


if __name__ == "__main__":
    main()
