"""Task results: small values passed downstream through the termination message.

A task writes `name=value` lines to /dev/termination-log (Kubernetes keeps
the file's content in the pod's status, 4096 bytes at most). Results are for
small things (a row count, a partition name, a file path); bulk data belongs
on the run's workspace, and the limits below say so in the error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sluice.api.v1alpha1 import TaskSpec

VALUE_LIMIT = 4000  # all but a name's room in the 4096-byte message: a fan-out list fits
MESSAGE_LIMIT = 4096  # the kubelet truncates a termination message here
# All of a run's results live in its one object (at most ~1.5 MB in etcd),
# beside thousands of task entries: together they get this share of it.
RUN_RESULTS_BUDGET = 256_000
LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$")


def parse_results(message: str | None) -> dict[str, str]:
    """`name=value` lines of a termination message; other lines are ignored."""
    results: dict[str, str] = {}
    for line in (message or "").splitlines():
        match = LINE.match(line.strip())
        if match:
            results[match.group(1)] = match.group(2)
    return results


def declared_results(task: TaskSpec, message: str | None) -> tuple[dict[str, str], str | None]:
    """(the task's declared results, an error message if a limit was broken)."""
    names = [result.name for result in task.results or ()]
    if not names:
        return {}, None
    if message is not None and len(message.encode()) >= MESSAGE_LIMIT:
        return {}, (
            f"the termination message reached Kubernetes' {MESSAGE_LIMIT}-byte limit, so results may be cut; "
            "write bulk data to the workspace and pass its path as a result"
        )
    written = parse_results(message)
    for name in names:
        value = written.get(name)
        if value is not None and len(value.encode()) > VALUE_LIMIT:
            return {}, (
                f'result "{name}" is {len(value.encode())} bytes; the limit is {VALUE_LIMIT} '
                "(write bulk data to the workspace and pass its path as a result)"
            )
    return {name: written[name] for name in names if name in written}, None


def stored_size(results: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
    """Bytes these results take in the run's status (JSON, with its keys)."""
    pairs = results.items() if isinstance(results, Mapping) else results
    return sum(len(name) + len(value.encode()) + 24 for name, value in pairs)


def most_results_bytes(task: TaskSpec) -> int:
    """The most a task's declared results can take in the status: its whole
    termination message, and the names' overhead.
    """
    names = [result.name for result in task.results or ()]
    return MESSAGE_LIMIT + sum(len(name) + 24 for name in names) if names else 0


def over_budget_message(used: int, size: int) -> str:
    return (
        f"this task's results ({size} bytes) would bring the run's results to {used + size} bytes, "
        f"past the {RUN_RESULTS_BUDGET}-byte budget a run has for all its results; "
        "write bulk data to the workspace and pass its path as a result"
    )
