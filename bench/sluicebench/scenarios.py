"""The benchmark's scenarios, named by shape and size: ``chainN`` (one run of
an N-task chain), ``runsN`` (N runs of a 5-task chain, submitted together),
``fanoutN`` (one run of root -> N parallel tasks -> join) and ``matrixN``
(the same shape, the middle one task fanned out to N instances by a matrix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

IMAGE = "busybox:1.36"
GROUP_VERSION = "sluice.dev/v1alpha1"
RUNS_CHAIN = 5

# Task pods go to the simulated nodes, and the ceiling's plain pods with the
# same selector and toleration, so both take the same scheduling path.
NODE_SELECTOR = {"type": "kwok"}
TOLERATIONS = [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]

DEFAULT = ["chain20", "runs50", "runs200", "fanout100"]
BIG = ["runs1000", "fanout1000"]
NAME = re.compile(r"^(chain|runs|fanout|matrix)(\d+)$")


@dataclass(frozen=True)
class Scenario:
    """A pipeline shape and how many runs of it start together."""

    name: str
    runs: int
    parents: dict[str, list[str]]  # task -> its upstreams, in pipeline order
    fanout: list[str]  # the parallel tasks (or instances, "w[i]") of a fan-out; empty otherwise
    matrix: int = 0  # matrixN: the middle task's instances (``parents`` lists them as w[i])

    @property
    def tasks(self) -> int:
        return self.runs * len(self.parents)

    @property
    def repeatable(self) -> bool:
        """``--repeat`` applies to the many-runs and fan-out scenarios, where noise matters most."""
        return self.name.startswith(("runs", "fanout", "matrix"))


def chain(length: int) -> dict[str, list[str]]:
    return {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(length)}


def fan(width: int) -> tuple[dict[str, list[str]], list[str]]:
    middle = [f"w{i}" for i in range(width)]
    return {"root": [], **{w: ["root"] for w in middle}, "join": middle}, middle


def parse(name: str) -> Scenario:
    """A scenario from its name; ValueError for one that is not ``chainN``,
    ``runsN``, ``fanoutN`` or ``matrixN``.
    """
    match = NAME.match(name)
    if match is None:
        raise ValueError(f"unknown scenario {name!r}: expected chainN, runsN, fanoutN or matrixN")
    shape, size = match[1], int(match[2])
    if shape == "matrix":
        # The instances stand in the DAG as the parallel tasks would: the
        # edges and the fan-out figures read them by their keys, w[i].
        instances = [f"w[{i}]" for i in range(size)]
        parents = {"root": [], **{w: ["root"] for w in instances}, "join": instances}
        return Scenario(name, 1, parents, instances, matrix=size)
    if shape == "chain":
        return Scenario(name, 1, chain(size), [])
    if shape == "runs":
        return Scenario(name, size, chain(RUNS_CHAIN), [])
    parents, middle = fan(size)
    return Scenario(name, 1, parents, middle)


# A fan-out's parallel pods run this long on kwok: longer than creating them
# all takes, so the creation rate is measured as the ceiling is, on pods
# that are created, bound and started but not yet finishing (finishing adds
# a status write per pod that the ceiling's plain pods do not pay).
FANOUT_TASK_DURATION = "10s"


def pipeline(name: str, scenario: Scenario) -> dict[str, Any]:
    if scenario.matrix:
        fanned = task("w", "root", duration=FANOUT_TASK_DURATION)
        fanned["matrix"] = {"axes": [{"name": "part", "values": list(range(scenario.matrix))}]}
        return pipeline_of(name, [task("root"), fanned, task("join", "w")])
    middle = set(scenario.fanout)
    tasks = [
        task(task_name, *ups, duration=FANOUT_TASK_DURATION if task_name in middle else None)
        for task_name, ups in scenario.parents.items()
    ]
    return pipeline_of(name, tasks)


def task(name: str, *deps: str, duration: str | None = None) -> dict[str, Any]:
    """A task of the simulated image; ``duration``: how long its kwok pod runs."""
    spec: dict[str, Any] = {"name": name, "image": IMAGE}
    if deps:
        spec["dependsOn"] = list(deps)
    if duration:
        spec["metadata"] = {"annotations": {"sim.sluice.dev/duration": duration}}
    return spec


def pipeline_of(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """A Pipeline whose pods land on the kwok nodes."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"defaults": {"nodeSelector": NODE_SELECTOR, "tolerations": TOLERATIONS}, "tasks": tasks},
    }


def run(name: str, pipeline_name: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": pipeline_name}},
    }


def idle_owner(name: str) -> dict[str, Any]:
    """A suspended Job: it starts nothing, but it is a real owner for the
    ceiling's pods (see ``plain_pod``).
    """
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "idle", "image": IMAGE}],
                }
            },
        },
    }


def plain_pod(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    """A pod shaped like a task pod (image, container, restart policy,
    scheduling), for measuring the API server's ceiling, created by no
    operator. It lives the life a task pod lives on this cluster: owned (so
    the garbage collector tracks it), and run to Succeeded by kwok (its
    stages end pods owned by a Job). Without that the ceiling would measure a
    cluster doing less work per pod than during a fan-out. It is not the
    owner's controlled pod, so the Job controller leaves it alone.
    """
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"sluice-bench/ceiling": "true"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": NODE_SELECTOR,
            "tolerations": TOLERATIONS,
            "containers": [
                {"name": "task", "image": IMAGE, "terminationMessagePolicy": "FallbackToLogsOnError"}
            ],
        },
    }
