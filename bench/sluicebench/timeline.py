"""What this process saw, and when: the two ends of every DAG edge.

All times are ``time.monotonic()`` at the moment this process received the
watch event, so both ends of an edge come from the same clock (and, for the
pod-to-pod figure, from the same watch stream, in the API server's order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RUN = "sluice.dev/run"  # operator/sluice/api/labels.py: RUN, TASK, ATTEMPT, INSTANCE
TASK = "sluice.dev/task"
ATTEMPT = "sluice.dev/attempt"
INSTANCE = "sluice.dev/instance"

TaskKey = tuple[str, str]  # (run, task)
FINISHED = ("Succeeded", "Failed")


def _task_key(obj: dict[str, Any]) -> tuple[TaskKey, int] | None:
    """The (run, task) and attempt an object's labels name, if it is a task's
    (an instance of a fanned-out task: its task as ``task[index]``).
    """
    found = (obj.get("metadata") or {}).get("labels") or {}
    run, task = found.get(RUN), found.get(TASK)
    if not run or not task:
        return None
    if found.get(INSTANCE):
        task = f"{task}[{found[INSTANCE]}]"
    try:
        attempt = int(found.get(ATTEMPT) or 0)
    except ValueError:
        attempt = 0
    return (run, task), attempt


@dataclass
class Timeline:
    """First sightings per task: "created" is the first event of its first
    pod (its first attempt's), "succeeded" the first event showing any of
    its pods Succeeded (which is what its dependents wait for).
    """

    pod_created: dict[TaskKey, float] = field(default_factory=dict)
    pod_succeeded: dict[TaskKey, float] = field(default_factory=dict)
    job_created: dict[TaskKey, float] = field(default_factory=dict)
    run_phase: dict[str, str] = field(default_factory=dict)
    pods_seen: int = 0
    jobs_seen: int = 0
    events: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        self.events += 1
        found = _task_key(obj)
        if found is None or kind == "DELETED":
            return
        key, _ = found
        if key not in self.pod_created:  # a retry's pod comes later: this is the first attempt's
            self.pod_created[key] = now
            self.pods_seen += 1
        if (obj.get("status") or {}).get("phase") == "Succeeded" and key not in self.pod_succeeded:
            self.pod_succeeded[key] = now
            self.changed.set()

    def on_job(self, kind: str, obj: dict[str, Any], now: float) -> None:
        self.events += 1
        found = _task_key(obj)
        if found is None or kind == "DELETED":
            return
        key, _ = found
        if key not in self.job_created:
            self.job_created[key] = now
            self.jobs_seen += 1

    def on_run(self, kind: str, obj: dict[str, Any], _now: float) -> None:
        self.events += 1
        phase = (obj.get("status") or {}).get("phase")
        name = obj["metadata"]["name"]
        if kind != "DELETED" and phase and self.run_phase.get(name) != phase:
            self.run_phase[name] = phase
            self.changed.set()

    async def wait_until(self, condition: Callable[[], bool], seconds: float) -> None:
        """Wait until ``condition`` holds, re-checking on every change the
        watches report; raises TimeoutError at the deadline.
        """
        async with asyncio.timeout(seconds):
            while not condition():
                # No await between the check and the clear: no change slips past.
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Edge:
    """One dependent task's critical edge: from its last upstream to succeed
    to its own pod (and, with Jobs, its Job) being created.
    """

    run: str
    parent: str
    child: str
    pod_to_pod: float
    operator_hop: float
    job_controller_hop: float | None


def edges(timeline: Timeline, runs: list[str], parents: dict[str, list[str]]) -> list[Edge]:
    """Every measurable edge of every run.

    A task with several upstreams counts once, from the upstream that
    succeeded last: the others' edges would include waiting for that one,
    which is the DAG's shape, not the operator's latency.
    """
    with_jobs = bool(timeline.job_created)
    result = []
    for run in runs:
        for child, ups in parents.items():
            done = [
                (timeline.pod_succeeded[(run, up)], up) for up in ups if (run, up) in timeline.pod_succeeded
            ]
            created = timeline.pod_created.get((run, child))
            if not ups or len(done) < len(ups) or created is None:
                continue
            ready, parent = max(done)
            job = timeline.job_created.get((run, child))
            if with_jobs and job is None:
                continue
            result.append(
                Edge(
                    run=run,
                    parent=parent,
                    child=child,
                    pod_to_pod=created - ready,
                    operator_hop=(job if job is not None else created) - ready,
                    job_controller_hop=created - job if job is not None else None,
                )
            )
    return result


def creation_rate(times: list[float]) -> float | None:
    """Objects created per second from the first to the last of ``times``."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None
