"""A task whose pod cannot start shows why on the run itself."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration


def test_an_unschedulable_task_shows_the_schedulers_reason_on_the_run_and_waits_for_a_node(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(
        namespace,
        pipeline("stuck", [task("load")], defaults={"nodeSelector": {"sluice.dev/no-such-node": "x"}}),
        run("stuck-1", "stuck"),
    )

    def waiting() -> dict[str, Any] | None:
        status = kube.run(namespace, "stuck-1").get("status") or {}
        outcome = next((c for c in status.get("conditions") or () if c["type"] == "Succeeded"), {})
        return status if outcome.get("reason") == "Unschedulable" else None

    shown = wait_for("the run to say why its task cannot start", waiting)
    [load] = shown["tasks"]
    assert (shown["phase"], load["phase"], load["reason"]) == ("Running", "Running", "Unschedulable")
    assert "didn't match Pod's node affinity/selector" in load["message"]
    outcome = next(c for c in shown["conditions"] if c["type"] == "Succeeded")
    assert outcome["status"] == "Unknown" and 'task "load" cannot start: Unschedulable' in outcome["message"]
    events = kube.wait_events(namespace, "stuck-1", {"TaskWaiting"})
    [waiting] = [e for e in events if e.reason == "TaskWaiting"]
    assert 'task "load" cannot start: Unschedulable' in waiting.message

    # It waits for a node (no pending deadline for scheduling); cancelling ends it.
    kube.kubectl(
        "patch",
        "pipelinerun",
        "stuck-1",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"cancelled":true}}',
    )
    assert kube.wait_run(namespace, "stuck-1", ("Cancelled",))["status"]["phase"] == "Cancelled"
    wait_for("its pod to be stopped", lambda: not kube.pods(namespace, "stuck-1"), timeout=30)
