"""Fan-out: a task with a ``matrix`` runs once per combination of values (pure).

Why the values are worked out when the task becomes ready, not when the run
starts: an axis may read an upstream task's result (the files an upstream
"list" task found), known only once that task succeeded. Everything an
expansion reads (the spec snapshot, the run's params, recorded results) is
frozen in the run's status, so expanding again on a later pass, or after a
restart, gives the same instances in the same order: nothing about the
fan-out needs storing beyond each instance's outcome.

Inside the plan an instance is a "unit" keyed ``task[index]``: brackets
cannot occur in a task name, so the key is never mistaken for one, and the
retry, result and finalizer rules that work per key work per instance.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sluice.api.v1alpha1 import MAX_INSTANCES, Matrix, TaskRunStatus, TaskSpec
from sluice.engine.errors import InvalidPipeline

INSTANCE_KEY = re.compile(r"^(?P<task>[^\[]+)\[(?P<index>\d+)\]$")
VALUES_LABEL_LIMIT = 64
MATRIX_PREFIX = "matrix."


def unit_key(task: str, index: int | None) -> str:
    """The plan's key for one task, or for one instance of a fanned-out task."""
    return task if index is None else f"{task}[{index}]"


def split_key(key: str) -> tuple[str, int | None]:
    """(task, instance index or None) of a unit key."""
    match = INSTANCE_KEY.match(key)
    if match is None:
        return key, None
    return match.group("task"), int(match.group("index"))


@dataclass(frozen=True)
class Fanout:
    """A fanned-out task's instances, each its matrix values; or why it cannot
    fan out (the task then fails with ``reason``).
    """

    instances: tuple[Mapping[str, str], ...] = ()
    reason: str | None = None
    message: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None

    def variables(self, index: int) -> dict[str, str]:
        """``$(matrix.AXIS)`` values of one instance."""
        return {MATRIX_PREFIX + axis: value for axis, value in self.instances[index].items()}

    def label(self, index: int) -> str:
        """A short reminder of an instance's values for its status entry."""
        text = ", ".join(f"{axis}={value}" for axis, value in self.instances[index].items())
        return text if len(text) <= VALUES_LABEL_LIMIT else text[: VALUES_LABEL_LIMIT - 3] + "..."


def axis_names(matrix: Matrix) -> list[str]:
    """The names ``$(matrix.NAME)`` may use: the axes', or an include-only
    matrix's keys (every include entry gives the same ones).
    """
    if matrix.axes:
        return [axis.name for axis in matrix.axes]
    return sorted((matrix.include or [{}])[0])


def check_matrix(task: TaskSpec) -> None:
    """Raise InvalidPipeline for a matrix that no run could expand: include
    entries that do not give exactly the axes, or a literal product past
    the limit. What ``from`` reads is checked with the other references.
    """
    matrix = task.matrix
    if matrix is None:
        return
    names = axis_names(matrix)
    for i, entry in enumerate(matrix.include or ()):
        if sorted(entry) != sorted(names):
            raise InvalidPipeline(
                "InvalidMatrix",
                f'task "{task.name}" matrix.include[{i}] gives {sorted(entry) or "nothing"}: '
                f"every include entry must give a value for exactly the axes {names}",
            )
    axes = matrix.axes or ()
    if all(axis.values is not None for axis in axes):
        count = _product_size([len(axis.values or ()) for axis in axes]) + len(matrix.include or ())
        if count > MAX_INSTANCES:
            raise InvalidPipeline(
                "TooManyInstances",
                f'task "{task.name}" would fan out to {count} instances; the limit is {MAX_INSTANCES}',
            )


def _product_size(sizes: Sequence[int]) -> int:
    total = 1 if sizes else 0
    for size in sizes:
        total *= size
    return total


# An instance's entry in the status beside its values and pod name (index,
# phase, times, attempts, exit code, reason): a failed one measured 180 bytes.
INSTANCE_ENTRY_BYTES = 200


def _pod_name_bytes(task: str, run_name: str) -> int:
    return min(63, len(run_name) + len(task) + 16)


def fanout_bytes(task: str, run_name: str, fanout: Fanout) -> int:
    """What a fan-out's instance entries take in the run's status."""
    each = INSTANCE_ENTRY_BYTES + _pod_name_bytes(task, run_name)
    return sum(each + _stored(fanout.label(i)) for i in range(len(fanout.instances)))


def recorded_bytes(entry: TaskRunStatus, run_name: str) -> int:
    """The same, for the instances a status records."""
    each = INSTANCE_ENTRY_BYTES + _pod_name_bytes(entry.name, run_name)
    return sum(each + _stored(i.values or "") for i in entry.instances or ())


def _stored(text: str) -> int:
    """Bytes a string takes in the stored JSON (UTF-8, escapes included)."""
    return len(json.dumps(text, ensure_ascii=False).encode())


def expand(matrix: Matrix, variables: Mapping[str, str]) -> Fanout:
    """The instances of a matrix, given the run's variables."""
    columns: list[tuple[str, list[str]]] = []
    for axis in matrix.axes or ():
        if axis.values is not None:
            columns.append((axis.name, [_scalar(v) for v in axis.values]))
            continue
        values = _read_axis(axis.name, axis.from_ or "", variables)
        if isinstance(values, Fanout):
            return values
        columns.append((axis.name, values))
    sizes = [len(values) for _, values in columns]
    count = _product_size(sizes) + len(matrix.include or ())
    if count > MAX_INSTANCES:
        shown = " x ".join(str(size) for size in sizes) or "0"
        return Fanout(
            reason="TooManyInstances",
            message=f"the matrix gives {count} instances ({shown} plus {len(matrix.include or ())} "
            f"included), past the limit of {MAX_INSTANCES}",
        )
    names = [name for name, _ in columns]
    instances: list[Mapping[str, str]] = []
    if columns:
        instances = [
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in columns))
        ]
    instances += [{k: _scalar(v) for k, v in entry.items()} for entry in matrix.include or ()]
    return Fanout(tuple(instances))


def _scalar(value: object) -> str:
    """A value as the text ``$(matrix.AXIS)`` gives: strings as they are,
    numbers and booleans as JSON writes them.
    """
    return value if isinstance(value, str) else json.dumps(value)


def _read_axis(name: str, source: str, variables: Mapping[str, str]) -> list[str] | Fanout:
    """An axis's values from a param or result holding a JSON array of scalars."""
    variable = source[2:-1]
    text = variables.get(variable)
    if text is None:
        return Fanout(
            reason="MissingResult",
            message=f'matrix axis "{name}" reads {source}, which its task did not write',
        )
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        return _not_an_array(name, source, text, f"it is not JSON ({error.msg})")
    if not isinstance(values, list):
        return _not_an_array(name, source, text, f"it is a JSON {type(values).__name__}, not an array")
    for i, value in enumerate(values):
        if value is None or isinstance(value, dict | list):
            kind = "null" if value is None else type(value).__name__
            return _not_an_array(name, source, text, f"item {i} is a {kind}, not a string, number or boolean")
    if len(values) > MAX_INSTANCES:
        return Fanout(
            reason="TooManyInstances",
            message=f'matrix axis "{name}" reads {len(values)} values from {source}, '
            f"past the limit of {MAX_INSTANCES} instances",
        )
    return [_scalar(value) for value in values]


def _not_an_array(name: str, source: str, text: str, why: str) -> Fanout:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return Fanout(
        reason="InvalidMatrix",
        message=f'matrix axis "{name}" reads {source} = {shown!r}: {why}; '
        "it must be a JSON array of strings, numbers or booleans",
    )


def gathered(values: Sequence[str | None]) -> str:
    """A fanned-out task's result as its dependents read it: a JSON array of
    every instance's value in instance order, null where one wrote none.
    """
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
