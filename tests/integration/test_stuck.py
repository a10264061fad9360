"""A task whose pod cannot start shows why on the run, and fails after the
pending deadline, its retries then applying.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]


def test_an_unschedulable_task_shows_the_schedulers_reason_then_fails_after_the_deadline_and_retries(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    operator.stop()
    operator.env["SLUICE_PENDING_DEADLINE_SECONDS"] = "4"
    try:
        operator.start()
        nowhere = task("load", retries={"limit": 1, "backoff": {"initialSeconds": 0}})
        kube.apply(
            namespace,
            pipeline("stuck", [nowhere], defaults={"nodeSelector": {"sluice.dev/no-such-node": "x"}}),
            run("stuck-1", "stuck"),
        )

        def waiting() -> dict[str, Any] | None:
            status = kube.run(namespace, "stuck-1").get("status") or {}
            outcome = next((c for c in status.get("conditions") or () if c["type"] == "Succeeded"), {})
            return status if outcome.get("reason") == "Unschedulable" else None

        shown = wait_for("the run to say why its task cannot start", waiting)
        [load] = shown["tasks"]
        assert (load["phase"], load["reason"]) == ("Running", "Unschedulable")
        assert "node" in load["message"]
        done = kube.wait_run(namespace, "stuck-1", timeout=60)
        [load] = done["status"]["tasks"]
        assert (done["status"]["phase"], load["reason"], load["attempts"]) == ("Failed", "Unschedulable", 2)
        assert "pending deadline of 4s" in load["message"]
        reasons = {e.reason for e in kube.events(namespace, "stuck-1")}
        assert {"TaskWaiting", "TaskFailed"} <= reasons
        wait_for("its pods to be stopped", lambda: not kube.pods(namespace, "stuck-1"), timeout=30)
    finally:
        operator.stop()
        operator.env.pop("SLUICE_PENDING_DEADLINE_SECONDS", None)
        operator.start()
