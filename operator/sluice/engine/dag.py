"""Pure DAG logic: validation, ordering and readiness of a pipeline's tasks.

Nothing here talks to Kubernetes, so every rule about *which task may run
when* is unit-tested in milliseconds. The reconciler feeds in what it
observed and acts on what these functions return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sluice.api.v1alpha1 import (
    FAILED_TASK_PHASES,
    FINISHED_TASK_PHASES,
    UNSUCCESSFUL_TASK_PHASES,
    PipelineSpec,
)
from sluice.engine.errors import InvalidPipeline


@dataclass(frozen=True)
class Graph:
    """Tasks in declaration order and, for each, the tasks it waits for.

    ``rules`` holds each task's trigger rule (default AllSucceeded);
    ``finally_`` the tasks that run once every other task has finished.
    """

    order: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: Mapping[str, str] = field(default_factory=dict)
    finally_: frozenset[str] = frozenset()

    @classmethod
    def from_edges(
        cls,
        order: Sequence[str],
        deps: Mapping[str, Iterable[str]],
        rules: Mapping[str, str] | None = None,
        finally_: Iterable[str] = (),
    ) -> Graph:
        dependents: dict[str, list[str]] = {name: [] for name in order}
        frozen = {name: tuple(dict.fromkeys(deps.get(name, ()))) for name in order}
        for name in order:
            for dep in frozen[name]:
                dependents.setdefault(dep, []).append(name)
        return cls(
            tuple(order),
            frozen,
            {k: tuple(v) for k, v in dependents.items()},
            dict(rules or {}),
            frozenset(finally_),
        )

    @property
    def main(self) -> tuple[str, ...]:
        return tuple(name for name in self.order if name not in self.finally_)

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.deps[name])
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.deps[dep])
        return seen


def build_graph(spec: PipelineSpec) -> Graph:
    """Validate the DAG of ``spec`` and return it; raise InvalidPipeline."""
    finally_tasks = list(spec.finally_ or ())
    all_tasks = [*spec.tasks, *finally_tasks]
    names = [task.name for task in all_tasks]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidPipeline("DuplicateTaskName", f'task name "{name}" is used more than once')
        seen.add(name)
    for task in finally_tasks:
        if task.depends_on:
            raise InvalidPipeline(
                "InvalidFinally", f'finally task "{task.name}" cannot use dependsOn: it runs after all tasks'
            )
    main = {task.name for task in spec.tasks}
    deps = {task.name: list(task.depends_on or ()) for task in all_tasks}
    for task in spec.tasks:
        for dep in task.depends_on or ():
            if dep == task.name:
                raise InvalidPipeline("CycleDetected", f'task "{task.name}" depends on itself')
            if dep not in main:
                raise InvalidPipeline(
                    "UnknownDependency",
                    f'task "{task.name}" depends on "{dep}", which is not a task of this pipeline',
                )
    rules = {task.name: task.trigger_rule for task in all_tasks}
    graph = Graph.from_edges(names, deps, rules, (t.name for t in finally_tasks))
    cycle = find_cycle(graph)
    if cycle:
        path = " -> ".join([*cycle, cycle[0]])
        raise InvalidPipeline("CycleDetected", f"tasks form a cycle: {path}")
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One dependency cycle (as a task list), or None for a DAG.

    Iterative DFS so a 500-task chain cannot hit Python's recursion limit.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph.order, white)
    for root in graph.order:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, index = stack[-1]
            deps = graph.deps[node]
            if index < len(deps):
                stack[-1] = (node, index + 1)
                dep = deps[index]
                if color[dep] == grey:
                    return path[path.index(dep) :]
                if color[dep] == white:
                    color[dep] = grey
                    stack.append((dep, 0))
                    path.append(dep)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def topological_order(graph: Graph) -> list[str]:
    """Tasks so that each comes after all it depends on (stable by declaration)."""
    remaining = {name: len(graph.deps[name]) for name in graph.order}
    ready = [name for name in graph.order if remaining[name] == 0]
    result: list[str] = []
    while ready:
        name = ready.pop(0)
        result.append(name)
        for child in graph.dependents.get(name, ()):
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    return result


def trigger_verdict(rule: str, upstream: Sequence[str]) -> str:
    """Return "run", "wait" or "skip" for a task whose upstream tasks are in ``upstream``.

    Decided as early as the outcome is certain: AllSucceeded skips as soon as
    one upstream task did not succeed; AnyFailed runs as soon as one failed.
    """
    if not upstream:
        return "run"
    any_failed = any(phase in FAILED_TASK_PHASES for phase in upstream)
    early = {
        "AllSucceeded": "skip" if any(phase in UNSUCCESSFUL_TASK_PHASES for phase in upstream) else None,
        "AllDone": None,
        "AnyFailed": "run" if any_failed else None,
        "AllFailed": "skip" if any(phase in ("Succeeded", "Skipped") for phase in upstream) else None,
        "NoneFailed": "skip" if any_failed else None,
    }[rule]
    if early is not None:
        return early
    if not all(phase in FINISHED_TASK_PHASES for phase in upstream):
        return "wait"
    return "skip" if rule == "AnyFailed" else "run"


def task_verdict(
    graph: Graph,
    name: str,
    phases: Mapping[str, str],
    instances: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Whether ``name`` may run, wait, or is skipped. A fanned-out upstream
    task counts as its instances (``instances``: their phases, by task), so
    trigger rules count instances: AllFailed means every instance failed.
    It may run only once all of them ended; a skip is decided as early as
    for any task.
    """
    if name in graph.finally_:
        main = [phases[m] for m in graph.main]
        return "run" if all(phase in FINISHED_TASK_PHASES for phase in main) else "wait"
    upstream: list[str] = []
    fanning = False  # a fanned-out upstream task still has instances to finish
    for dep in graph.deps[name]:
        fanned = instances.get(dep) if instances else None
        if fanned:
            upstream.extend(fanned)
            fanning = fanning or not all(phase in FINISHED_TASK_PHASES for phase in fanned)
        else:
            upstream.append(phases[dep])
    verdict = trigger_verdict(graph.rules.get(name, "AllSucceeded"), upstream)
    # Dependents wait for every instance (their gathered results exist only
    # then): AnyFailed runs once the fan-out is over, not at its first failure.
    return "wait" if fanning and verdict == "run" else verdict


def resolve_task_phases(
    graph: Graph,
    observed: Mapping[str, str],
    skipped_by_when: Iterable[str] = (),
    instances: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """Every task's phase, given the phases observed from its pod (if any).

    A task without a pod is Skipped when its trigger rule can no longer be
    met or its ``when`` was false, otherwise Pending. Observed phases always
    win: a pod that exists is the truth. Finally tasks come last.
    """
    when_false = set(skipped_by_when)
    phases: dict[str, str] = {}
    order = [n for n in topological_order(graph) if n not in graph.finally_]
    for name in [*order, *(n for n in graph.order if n in graph.finally_)]:
        if name in observed:
            phases[name] = observed[name]
            continue
        verdict = task_verdict(graph, name, phases, instances)
        if verdict == "skip" or (verdict == "run" and name in when_false):
            phases[name] = "Skipped"
        else:
            phases[name] = "Pending"
    return phases


def ready_tasks(
    graph: Graph,
    phases: Mapping[str, str],
    started: Iterable[str] = (),
    instances: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Tasks to start now: Pending, not yet started, trigger rule met."""
    already = set(started)
    return [
        name
        for name in graph.order
        if phases[name] == "Pending"
        and name not in already
        and task_verdict(graph, name, phases, instances) == "run"
    ]


def within_parallelism(ready: list[str], phases: Mapping[str, str], parallelism: int | None) -> list[str]:
    """The ready tasks that fit under a run's ``parallelism`` (tasks at once)."""
    if parallelism is None:
        return ready
    running = sum(1 for phase in phases.values() if phase == "Running")
    return ready[: max(0, parallelism - running)]


def run_phase(phases: Mapping[str, str]) -> str:
    """The run's phase from its tasks' phases."""
    values = list(phases.values())
    if values and all(phase in FINISHED_TASK_PHASES for phase in values):
        return "Failed" if "Failed" in values else "Succeeded"
    if any(phase != "Pending" for phase in values):
        return "Running"
    return "Pending"
