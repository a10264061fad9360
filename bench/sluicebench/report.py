"""Tables for the terminal, and the targets (issue 14) beside the figures."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluicebench.stats import summary

Result = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    target: str
    figure: str
    status: str  # PASS, MISS or "-" (not measured)


def brief(error: object, width: int = 120) -> str:
    """An error without the request line ("POST /apis/...: "), cut to ``width``."""
    text = re.sub(r"^[A-Z]+ /\S*: ", "", str(error))
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(stats: dict[str, float] | None, key: str) -> str:
    return "-" if stats is None else f"{stats[key]:.0f}"


def _label(result: Result) -> str:
    label = str(result["scenario"])
    if result.get("repetition") is not None:
        label += f"#{result['repetition']}"
    return label + (" (profiled)" if result.get("profiled") else "")


def latency_table(results: list[Result]) -> str:
    """Pod-to-pod and its two hops, p50/p90/p99/max in ms."""
    keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
    head = f"{'scenario':<22}{'mode':>5}{'edges':>6} |"
    head += " pod->pod p50   p90   p99   max | operator p50   p90   p99   max | job-ctl p50   p90   p99   max"
    lines = ["latency per edge (ms): pod Succeeded -> dependent's pod created, and its hops", head]
    for r in results:
        if r.get("error") and not r.get("edges"):
            lines.append(f"{_label(r):<22} ERROR: {brief(r['error'], 200)}")
            continue
        row = f"{_label(r):<22}{r['mode']:>5}{r['edges']:>6} |"
        for name, width in (("pod_to_pod", 13), ("operator_hop", 13), ("job_controller_hop", 12)):
            stats = r.get(name)
            row += f"{_cell(stats, keys[0]):>{width}}" + "".join(f"{_cell(stats, k):>6}" for k in keys[1:])
            row += " |" if name != "job_controller_hop" else ""
        lines.append(row)
    return "\n".join(lines)


def _blank(value: object) -> str:
    return "" if value is None else str(value)


def cost_table(results: list[Result]) -> str:
    """Wall time, the operator's CPU and memory, the machine's load, fan-out rates."""
    head = (
        f"{'scenario':<22}{'tasks':>6}{'wall s':>8}{'op cpu s':>9}{'ms/task':>8}{'peak MiB':>9}"
        f"{'rss MiB':>8}{'busy cores':>11}{'bench cpu s':>12}{'passes/task':>12}{'pass ms':>8}"
        f" | {'fan-out: last pod ms':>20}{'pods/s':>8}{'% ceiling':>10}{'op cores':>9}{'busy':>6}"
    )
    lines = [
        "cost (busy cores: whole machine, all processes, during the scenario; bench cpu: this process's own;"
        " passes/task and pass ms: run passes, from the operator's metrics;"
        " fan-out op cores / busy: the operator's and the machine's, first to last pod created)",
        head,
    ]
    for r in results:
        op = r.get("operator") or {}
        fan = r.get("fanout") or {}
        rec = r.get("reconcile") or {}
        pct = fan.get("fraction_of_ceiling")
        lines.append(
            f"{_label(r):<22}{r['tasks']:>6}{r.get('wall_seconds', '-'):>8}{op.get('cpu_seconds', '-'):>9}"
            f"{op.get('cpu_ms_per_task', '-'):>8}{op.get('peak_rss_mib', '-'):>9}{op.get('rss_mib', '-'):>8}"
            f"{r.get('machine_busy_cores', '-'):>11}{r.get('bench_cpu_seconds', '-'):>12}"
            f"{_blank(rec.get('passes_per_task')):>12}{_blank(rec.get('mean_ms')):>8}"
            f" | {fan.get('time_to_last_pod_ms', ''):>20}"
            f"{fan.get('pods_per_second', ''):>8}{'' if pct is None else f'{100 * pct:.0f}%':>10}"
            f"{_blank(fan.get('operator_cores_while_creating')):>9}"
            f"{_blank(fan.get('machine_busy_cores_while_creating')):>6}"
        )
    return "\n".join(lines)


def _pooled(results: list[Result], scenario: str) -> list[Result]:
    """The scenario's repetitions, without profiled ones when others exist
    (py-spy pauses the operator for every sample).
    """
    mine = [r for r in results if r["scenario"] == scenario and r.get("edges")]
    clean = [r for r in mine if not r.get("profiled")]
    return clean or mine


def _latency_verdict(results: list[Result], key: str, limit: float) -> Verdict:
    reps = _pooled(results, "runs50")
    target = f"runs50 pod-to-pod {key[:3]} < {limit:.0f} ms"
    if not reps:
        return Verdict(target, "not run", "-")
    stats = summary([e[3] / 1000 for r in reps for e in r["edges_ms"]])
    assert stats is not None
    each = " / ".join(f"{r['pod_to_pod'][key + '_ms']:.0f}" for r in reps)
    figure = f"{stats[key + '_ms']:.0f} ms pooled over {len(reps)} rep(s) (each: {each})"
    return Verdict(target, figure, "PASS" if stats[key + "_ms"] < limit else "MISS")


def _cpu_verdict(results: list[Result]) -> Verdict:
    target = "operator CPU < 5 ms/task (worst scenario)"
    measured = [r for r in results if (r.get("operator") or {}).get("cpu_ms_per_task") is not None]
    if not measured:
        return Verdict(target, "not run", "-")
    worst = max(measured, key=lambda r: float(r["operator"]["cpu_ms_per_task"]))
    value = float(worst["operator"]["cpu_ms_per_task"])
    return Verdict(target, f"{value:.1f} ms/task in {_label(worst)}", "PASS" if value < 5 else "MISS")


def _fanout_verdict(results: list[Result]) -> Verdict:
    """The median over the repetitions of each fan-out's rate against the
    mean of the ceilings just before and after it; three repetitions at
    least, as one ratio is within the ceiling's own noise of the target.
    """
    target = "fanout1000 creation rate >= 80% of ceiling"
    runs = [r for r in results if r["scenario"] == "fanout1000"]
    if not runs:
        return Verdict(target, "not run (needs --big)", "-")
    measured = [r for r in runs if (r.get("fanout") or {}).get("fraction_of_ceiling") is not None]
    stalled = [r for r in measured if r["fanout"].get("not_judged")]
    measured = [r for r in measured if not r["fanout"].get("not_judged")]
    if not measured:
        why = runs[-1].get("error") or ("no ceiling measured" if not runs[-1].get("ceiling") else "no rate")
        return Verdict(target, f"not measured: {brief(why)}", "-")
    fractions = sorted(float(r["fanout"]["fraction_of_ceiling"]) for r in measured)
    each = "; ".join(
        f"{100 * r['fanout']['fraction_of_ceiling']:.0f}% "
        f"({r['fanout']['pods_per_second']} of {r['fanout']['ceiling_pods_per_second']} pods/s)"
        for r in measured
    )
    median = statistics.median(fractions)
    figure = f"median {100 * median:.0f}% of {len(measured)}: {each}"
    if stalled:
        figure += f" ({len(stalled)} more not judged: kwok stalled in their windows)"
    if len(measured) < 3:
        return Verdict(target, figure + " (judged on 3 or more: --repeat 3)", "-")
    return Verdict(target, figure, "PASS" if median >= 0.8 else "MISS")


def verdicts(results: list[Result]) -> list[Verdict]:
    checks: list[Callable[[], Verdict]] = [
        lambda: _latency_verdict(results, "p50", 90),
        lambda: _latency_verdict(results, "p99", 300),
        lambda: _cpu_verdict(results),
        lambda: _fanout_verdict(results),
    ]
    return [check() for check in checks]


def targets_table(found: list[Verdict]) -> str:
    lines = ["targets (issue 14)", f"{'target':<46}{'status':<8}figure"]
    lines += [f"{v.target:<46}{v.status:<8}{v.figure}" for v in found]
    return "\n".join(lines)


def ceiling_line(ceiling: Result | None) -> str:
    if ceiling is None:
        return "API server ceiling: not measured"
    if ceiling.get("error"):
        return f"API server ceiling: ERROR {ceiling['error']}"
    return (
        f"API server ceiling: {ceiling['pods']} plain pods, {ceiling['concurrency']} in flight: "
        f"{ceiling['pods_per_second']} pods/s as seen by the watch "
        f"({ceiling['client_pods_per_second']} pods/s by the client's clock), "
        f"create latency p50 {ceiling['create_ms']['p50_ms']} ms p99 {ceiling['create_ms']['p99_ms']} ms, "
        f"machine busy {ceiling.get('machine_busy_cores_while_creating')} cores"
    )
