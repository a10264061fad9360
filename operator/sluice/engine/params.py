"""Parameter binding and ``$(...)`` substitution.

Why check every reference before the first pod exists: a typo in
``$(params.dat)`` should fail the run at once with the name in the message,
not surface as a literal ``$(params.dat)`` argument deep inside a task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from sluice.api import labels
from sluice.api.v1alpha1 import ParamValue, PipelineSpec, PodMetadata, TaskSpec
from sluice.engine.dag import Graph
from sluice.engine.errors import InvalidPipeline
from sluice.engine.matrix import MATRIX_PREFIX, axis_names, check_matrix
from sluice.engine.script import REFERENCE as SCRIPT_REFERENCE
from sluice.engine.script import check_script, is_shell

REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
CONTEXT_VARIABLES = (
    "context.pipelineRun.name",
    "context.pipelineRun.namespace",
    "context.pipelineRun.uid",
    "context.pipeline.name",
    "context.task.name",
    "context.scheduledTime",
    "context.scheduledDate",
    "context.dataIntervalStart",
    "context.dataIntervalEnd",
    "context.triggeredBy",
)
# What $(context.triggeredBy.ASSET.FIELD) may read of the update of an
# asset the schedule waits on (empty when the run was not started by it).
TRIGGER_FIELDS = {
    "run": "run",
    "pipeline": "pipeline",
    "task": "task",
    "namespace": "namespace",
    "sequence": "sequence",
    "time": "time",
    "scheduledTime": "scheduled_time",
    "scheduledDate": "scheduled_date",
}
TRIGGER_INTERVAL_FIELDS = ("dataIntervalStart", "dataIntervalEnd")
TRIGGERED_BY_PREFIX = "context.triggeredBy."


def trigger_variables(spec: PipelineSpec) -> set[str]:
    """The $(context.triggeredBy.ASSET.FIELD) names a pipeline may use: one
    per asset its schedule waits on and field. ASSET is the asset's name
    without its namespace (an ``ns/asset`` entry is read as ``asset``).
    """
    assets = (spec.schedule.on_assets if spec.schedule else None) or ()
    fields = [*TRIGGER_FIELDS, *TRIGGER_INTERVAL_FIELDS]
    return {f"{TRIGGERED_BY_PREFIX}{asset_key(asset)}.{field}" for asset in assets for field in fields}


def check_asset_schedule(spec: PipelineSpec) -> None:
    """Refuse an asset schedule no run could honour: two entries that
    $(context.triggeredBy.ASSET...) could not tell apart, and a pipeline
    scheduled on an asset of its own namespace that one of its own tasks
    updates (each run would start the next, for ever).
    """
    entries = (spec.schedule.on_assets if spec.schedule else None) or []
    keys = [asset_key(entry) for entry in entries]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise InvalidPipeline(
            "InvalidSchedule",
            f"schedule.onAssets lists {twice[0]} from two namespaces: $(context.triggeredBy.{twice[0]}...) "
            "could not tell them apart",
        )
    for task in [*spec.tasks, *(spec.finally_ or ())]:
        looped = sorted(set(task.updates_assets or ()) & {e for e in entries if "/" not in e})
        if looped:
            raise InvalidPipeline(
                "SelfTriggering",
                f'task "{task.name}" updates {looped[0]}, which this pipeline\'s schedule.onAssets waits on: '
                "each run would start the next",
            )


def asset_key(entry: str) -> str:
    """How $(context.triggeredBy...) names an onAssets entry: without its namespace."""
    return entry.rpartition("/")[2]


def bind_params(spec: PipelineSpec, given: list[ParamValue] | None) -> dict[str, str]:
    """Param name -> value for a run; raise InvalidPipeline on unknown or missing ones."""
    declared = {param.name: param for param in spec.params or ()}
    values = {param.name: param.value for param in given or ()}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InvalidPipeline(
            "InvalidParams",
            f"unknown param(s) {', '.join(unknown)}; the pipeline declares: "
            + (", ".join(sorted(declared)) or "none"),
        )
    missing = sorted(name for name, p in declared.items() if name not in values and p.default is None)
    if missing:
        raise InvalidPipeline(
            "MissingParams",
            f"param(s) {', '.join(missing)} have no default and were not given in spec.params",
        )
    return {name: values.get(name, p.default or "") for name, p in declared.items()}


def _task_strings(task: TaskSpec) -> Iterator[tuple[str, str]]:
    """(where, text) for every field of a task that accepts substitution."""
    for i, text in enumerate(task.command or ()):
        yield f"command[{i}]", text
    for i, text in enumerate(task.args or ()):
        yield f"args[{i}]", text
    for env in task.env or ():
        if env.value is not None:
            yield f"env {env.name}", env.value
    if task.working_dir:
        yield "workingDir", task.working_dir
    if task.script is not None and is_shell(task.script):
        yield "script", task.script
    for i, axis in enumerate((task.matrix.axes if task.matrix else None) or ()):
        if axis.from_ is not None:
            yield f"matrix.axes[{i}].from", axis.from_
    for i, expression in enumerate(task.when or ()):
        yield f"when[{i}].input", expression.input
        for j, value in enumerate(expression.values):
            yield f"when[{i}].values[{j}]", value


def _found(where: str, text: str) -> Iterator[str]:
    """The variables ``text`` names (in a script, only Sluice's namespaces)."""
    pattern = SCRIPT_REFERENCE if where == "script" else REFERENCE
    return (match.group(1) for match in pattern.finditer(text))


def references(task: TaskSpec) -> set[str]:
    """Every variable a task's fields name."""
    return {name for where, text in _task_strings(task) for name in _found(where, text)}


def pod_references(task: TaskSpec) -> set[str]:
    """The variables substituted into the task's pod (not ``when`` inputs or
    a matrix's ``from``, which the operator reads itself).
    """
    return {
        name
        for where, text in _task_strings(task)
        if not where.startswith(("when", "matrix."))
        for name in _found(where, text)
    }


def _task_variables(graph: Graph, task: TaskSpec, declared: Mapping[str, set[str]]) -> set[str]:
    """What ``task`` may reference: its ancestors' results and statuses, or
    (for a finally task) every main task's, plus the aggregate status.
    """
    visible = set(graph.main) if task.name in graph.finally_ else graph.ancestors(task.name)
    known = {f"tasks.{name}.status" for name in visible}
    known |= {f"tasks.{name}.results.{key}" for name in visible for key in declared.get(name, ())}
    if task.name in graph.finally_:
        known.add("tasks.status")
    return known


def _explain(task: TaskSpec, variable: str, spec: PipelineSpec, graph: Graph) -> str:
    parts = variable.split(".")
    if parts[0] == "tasks" and len(parts) >= 3:
        other = parts[1]
        if other not in graph.deps:
            return f"there is no task {other}"
        if task.name not in graph.finally_ and other not in graph.ancestors(task.name):
            return f'task "{task.name}" must depend on "{other}" (directly or not) to read it'
        if parts[2] == "results":
            return f'task "{other}" declares no result "{".".join(parts[3:])}"'
    if variable.startswith(TRIGGERED_BY_PREFIX):
        fields = ", ".join([*TRIGGER_FIELDS, *TRIGGER_INTERVAL_FIELDS])
        return (
            "use $(context.triggeredBy.ASSET.FIELD) with an asset of schedule.onAssets and a field of: "
            + fields
        )
    return "it is not a declared param, an upstream result or a context variable"


def _check_matrix_references(task: TaskSpec, found: list[tuple[str, str]]) -> set[str]:
    """The ``$(matrix.NAME)`` a task may use (its own axes), after refusing
    them where they cannot be known: in ``when`` and in an axis's ``from``,
    which are decided once for the whole task.
    """
    own = {MATRIX_PREFIX + name for name in axis_names(task.matrix)} if task.matrix else set()
    for where, name in found:
        if not name.startswith(MATRIX_PREFIX):
            continue
        if not own:
            raise InvalidPipeline(
                "InvalidReference", f'task "{task.name}" {where} references $({name}) but has no matrix'
            )
        if where.startswith("when") or where.startswith("matrix."):
            raise InvalidPipeline(
                "InvalidReference",
                f'task "{task.name}" {where} references $({name}): it is known per instance, '
                "but when and matrix are decided once for the whole task",
            )
        if name not in own:
            raise InvalidPipeline(
                "InvalidReference",
                f'task "{task.name}" {where} references $({name}); its matrix gives: '
                + ", ".join(sorted(f"$({n})" for n in own)),
            )
    return own


def _check_labels(where: str, metadata: PodMetadata | None) -> None:
    """Refuse the pod labels Sluice sets itself: it tells a run's pods apart
    by them, and a task labelled as another task's instance would be lost.
    """
    for key in (metadata.labels if metadata else None) or {}:
        if key in labels.OWN:
            raise InvalidPipeline(
                "InvalidLabels",
                f"{where} metadata.labels has {key}: Sluice sets that label on its pods itself",
            )


def check_references(spec: PipelineSpec, graph: Graph) -> None:
    """Raise InvalidPipeline for any ``$(...)`` that names nothing known, and
    for a matrix or script no run could carry out.
    """
    check_asset_schedule(spec)
    base = {f"params.{param.name}" for param in spec.params or ()} | set(CONTEXT_VARIABLES)
    base |= trigger_variables(spec)
    declared = {t.name: {r.name for r in t.results or ()} for t in spec.tasks}
    _check_labels("defaults", spec.defaults.metadata if spec.defaults else None)
    for task in [*spec.tasks, *(spec.finally_ or ())]:
        check_matrix(task)
        check_script(task)
        _check_labels(f'task "{task.name}"', task.metadata)
        found = [(where, name) for where, text in _task_strings(task) for name in _found(where, text)]
        own = _check_matrix_references(task, found)
        upstream = [(where, name) for where, name in found if name not in base and name not in own]
        if not upstream:
            continue  # most tasks: no need to walk their ancestors (5,000-task pipelines)
        known = _task_variables(graph, task, declared)
        for where, name in upstream:
            if name not in known:
                raise InvalidPipeline(
                    "InvalidReference",
                    f'task "{task.name}" {where} references $({name}): ' + _explain(task, name, spec, graph),
                )
    for env in (spec.defaults.env if spec.defaults else None) or ():
        for match in REFERENCE.finditer(env.value or ""):
            if match.group(1) not in base:
                raise InvalidPipeline(
                    "InvalidReference",
                    f"defaults env {env.name} references $({match.group(1)}), which is not declared",
                )


def substitute(text: str, variables: Mapping[str, str], for_kubelet: bool = False) -> str:
    """Replace each known ``$(name)``; unknown ones were rejected earlier.

    ``for_kubelet``: the text goes where the kubelet expands ``$(VAR)`` from
    the container's environment (command, args, env values). A value Sluice
    puts there is data, never a reference: every ``$`` in it is doubled,
    which the kubelet turns back into one, so a param ``$(DB_PASSWORD)``
    reaches the task as those 14 characters, not as a secret's value.
    """

    def value(match: re.Match[str]) -> str:
        found = variables.get(match.group(1))
        if found is None:
            return match.group(0)
        return found.replace("$", "$$") if for_kubelet else found

    return REFERENCE.sub(value, text)
