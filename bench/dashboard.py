#!/usr/bin/env python3
"""Dashboard render cost: the pages the dashboard sends on each load and each
live update, for a busy cluster (1,000 runs over 20 pipelines) and for large
runs (a 500-task and a 5,000-task DAG, half chains, half a fan-out join).

Rendering is what a page costs the server beyond its in-memory store (the
store keeps each run's view by resourceVersion, so "warm" is the steady
state and "cold" a first load after a restart). Figures (median of N
renders) are printed beside the target (< 100 ms per page) and saved as JSON
in bench/results/; nothing is asserted.

Usage: bench/dashboard.py [--repeat N]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from sluice.dashboard.pages import pipelines_page, run_page
from sluice.views.run_view import run_view
from sluicebench.cluster import save_result

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TARGET_MS = 100.0


def _run(name: str, pipeline: str, tasks: list[dict[str, Any]], phase: str, minute: int) -> dict[str, Any]:
    entries = [
        {
            "name": t["name"],
            "phase": phase,
            "podName": f"{name}-{t['name']}-0000",
            "startTime": f"2026-11-24T10:{minute % 60:02d}:00Z",
            "completionTime": f"2026-11-24T10:{minute % 60:02d}:30Z",
        }
        for t in tasks
    ]
    return {
        "metadata": {
            "name": name,
            "namespace": "etl",
            "uid": f"uid-{name}",
            "creationTimestamp": f"2026-11-24T10:{minute % 60:02d}:00Z",
            "resourceVersion": "1",
        },
        "spec": {"pipelineRef": {"name": pipeline}},
        "status": {
            "phase": phase,
            "pipelineName": pipeline,
            "pipelineSpec": {"tasks": tasks},
            "startTime": f"2026-11-24T10:{minute % 60:02d}:00Z",
            "completionTime": f"2026-11-24T10:{minute % 60:02d}:40Z",
            "progress": f"{len(tasks)}/{len(tasks)}",
            "tasks": entries,
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": ""}],
        },
    }


def _dag(size: int) -> list[dict[str, Any]]:
    """Half chains of 10, half a fan-out from one root joined at the end."""
    tasks: list[dict[str, Any]] = [{"name": "root", "image": "x"}]
    chains = size // 2 // 10
    for c in range(chains):
        for i in range(10):
            dep = "root" if i == 0 else f"chain-{c}-{i - 1}"
            tasks.append({"name": f"chain-{c}-{i}", "image": "x", "dependsOn": [dep]})
    wide = [f"part-{i}" for i in range(size - len(tasks) - 1)]
    tasks += [{"name": w, "image": "x", "dependsOn": ["root"]} for w in wide]
    tasks.append({"name": "join", "image": "x", "dependsOn": wide})
    return tasks


def _median_ms(render: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        render()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    small = [{"name": f"t{i}", "image": "x", **({"dependsOn": [f"t{i - 1}"]} if i else {})} for i in range(6)]
    objects = [
        _run(f"p{p:02d}-{r:03d}", f"p{p:02d}", small, "Failed" if r % 7 == 0 else "Succeeded", r)
        for p in range(20)
        for r in range(50)
    ]
    pipelines = [
        {"metadata": {"name": f"p{p:02d}", "namespace": "etl"}, "spec": {"tasks": small}} for p in range(20)
    ]

    def grouped() -> dict[tuple[str, str], list[Any]]:
        found: dict[tuple[str, str], list[Any]] = {}
        for obj in objects:
            view = run_view(obj)
            found.setdefault(("etl", view.pipeline or ""), []).append(view)
        return found

    views = grouped()
    results: dict[str, Any] = {"target_ms": TARGET_MS, "repeat": args.repeat}
    results["overview_1000_runs_cold_ms"] = _median_ms(
        lambda: pipelines_page(pipelines, grouped(), NOW), args.repeat
    )
    results["overview_1000_runs_warm_ms"] = _median_ms(
        lambda: pipelines_page(pipelines, views, NOW), args.repeat
    )
    results["overview_bytes"] = len(pipelines_page(pipelines, views, NOW))
    events = [{"type": "Normal", "reason": "Started", "message": "running", "count": 1}]
    flat = [{"name": "root", "image": "x"}] + [
        {"name": f"p{i}", "image": "x", "dependsOn": ["root"]} for i in range(499)
    ]
    wide = _run("flat-500", "flat", flat, "Succeeded", 0)
    results["run_page_500_wide_ms"] = _median_ms(lambda: run_page(wide, events, NOW), args.repeat)
    for size in (500, 5000):
        run = _run(f"big-{size}", "big", _dag(size), "Succeeded", 0)
        results[f"run_page_{size}_tasks_ms"] = _median_ms(lambda r=run: run_page(r, events, NOW), args.repeat)
        results[f"run_page_{size}_tasks_bytes"] = len(run_page(run, events, NOW))
    print(f"{'page':<34}{'median ms':>12}{'target':>10}")
    for key, value in results.items():
        if key.endswith("_ms") and key != "target_ms":
            verdict = "ok" if value < TARGET_MS else "OVER"
            print(f"{key.removesuffix('_ms'):<34}{value:>12.1f}{TARGET_MS:>9.0f} {verdict}")
    for key, value in results.items():
        if key.endswith("_bytes"):
            print(f"{key.removesuffix('_bytes') + ' size':<34}{value / 1024:>10.0f} KiB")
    save_result("dashboard", results)


if __name__ == "__main__":
    main()
