"""The chaos benchmark in a bounded form: runs of mixed DAGs finish, none
lost or doubled, while the operator (as installed) is SIGKILLed every few
seconds and the API server and etcd are restarted under it.

The full figures (50 runs, a minute of chaos) come from `make chaos`; this
checks the same promises on every CI run.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, OperatorProcess
from tests.integration.installed import Installation

# A kube-apiserver that has just restarted answers 403 for a moment, before
# its RBAC caches are filled: a restart's transient denials are no RBAC gap.
pytestmark = [pytest.mark.integration, pytest.mark.allows_forbidden, pytest.mark.cluster_scope_only]


def test_runs_survive_operator_kills_and_control_plane_restarts_with_nothing_lost_or_doubled(
    operator: OperatorProcess, installation: Installation, operator_logs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "chaos.json"
    command = [
        sys.executable, str(ROOT / "bench" / "chaos.py"), "--cluster", "tests",
        "--runs", "12", "--chaos-seconds", "20", "--timeout", "240",
        "--operator-kubeconfig", str(installation.kubeconfig), "--leader-namespace", installation.namespace,
        "--out", str(out), "--log-dir", str(operator_logs),  # read by the RBAC-denial check
    ]  # fmt: skip
    operator.stop()  # one operator at a time: the benchmark runs its own
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    finally:
        operator.start()
    assert out.exists(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    report = done.stdout[-3000:]
    assert result["runs_finished"] == 12, report
    assert result["runs_lost"] == [] and result["runs_wrong_outcome"] == [], report
    assert result["duplicate_pods"] == [] and result["tasks_over_retries"] == [], report
    assert [d["what"] for d in result["disruptions"] if d["what"] != "SIGKILL operator"] == [
        "restart kube-apiserver",
        "restart etcd",
        "restart kube-apiserver",
    ]
    assert all(d.get("ok", True) for d in result["disruptions"]), result["disruptions"]
    assert done.returncode == 0, report
