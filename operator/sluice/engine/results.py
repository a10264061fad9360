"""Task results: small values passed downstream through the termination message.

A task writes `name=value` lines to /dev/termination-log (Kubernetes keeps
the file's content in the pod's status, 4096 bytes at most). Results are for
small things (a row count, a partition name, a file path); bulk data belongs
on the run's workspace, and the limits below say so in the error.
"""

from __future__ import annotations

import re

from sluice.api.v1alpha1 import TaskSpec

VALUE_LIMIT = 1024
MESSAGE_LIMIT = 4096  # the kubelet truncates a termination message here
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
