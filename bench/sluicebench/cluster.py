"""The cluster and the operator process the benchmark runs against.

The cluster is a kwok one from ``hack/cluster``. By default it is the
benchmark's own (own state dir and ports): the integration tests' cluster
runs operators of its own, which would reconcile the benchmark's runs (and
contend for the leader lease) whenever the tests run at the same time.
``--cluster tests`` uses the tests' cluster instead; ``$KUBECONFIG`` wins over both.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from typing import Any, TextIO

ROOT = pathlib.Path(__file__).resolve().parents[2]
HACK = ROOT / "hack" / "cluster"
STATE = pathlib.Path.home() / ".local/state/sluice"
TREES = pathlib.Path(tempfile.gettempdir()) / "sluice-bench-trees"

CLUSTERS = {
    "bench": {
        "SLUICE_STATE_DIR": str(STATE / "bench-cluster"),
        "SLUICE_APISERVER_PORT": "16643",
        "SLUICE_ETCD_PORT": "12679",
        "SLUICE_KWOK_PORT": "10447",
    },
    # Must match TEST_CLUSTER_ENV in tests/integration/conftest.py.
    "tests": {
        "SLUICE_STATE_DIR": str(STATE / "test-cluster"),
        "SLUICE_APISERVER_PORT": "16543",
        "SLUICE_ETCD_PORT": "12579",
        "SLUICE_KWOK_PORT": "10347",
    },
}


class Cluster:
    """One ``hack/cluster`` cluster, addressed by its env overrides."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.env = {**os.environ, **CLUSTERS[name]}
        self.started = False

    def hack(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(HACK), *args], capture_output=True, text=True, check=check, env=self.env)

    def exports(self) -> dict[str, str]:
        """What ``hack/cluster env`` exports: KUBECONFIG and PATH (kubectl first)."""
        found = {}
        for line in self.hack("env").stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            found[key] = value
        return found

    def kubectl(self) -> str:
        return str(pathlib.Path(self.exports()["PATH"].split(":", 1)[0]) / "kubectl")

    def ensure_up(self) -> str:
        """The kubeconfig, bringing the cluster up if it is not running."""
        kubeconfig = self.exports()["KUBECONFIG"]
        if self.hack("status", check=False).returncode != 0:
            print(f"bringing up the {self.name} kwok cluster ({self.env['SLUICE_STATE_DIR']})", flush=True)
            subprocess.run([str(HACK), "up", "--nodes", "kwok"], check=True, env=self.env)
            self.started = True
        return kubeconfig

    def component_pids(self) -> dict[str, int]:
        """The running components (etcd, kube-apiserver, kwok, ...) by name,
        from ``hack/cluster``'s pid files.
        """
        found = {}
        for pidfile in sorted((pathlib.Path(self.env["SLUICE_STATE_DIR"]) / "pids").glob("*.pid")):
            with contextlib.suppress(ValueError, OSError):
                found[pidfile.stem] = int(pidfile.read_text().strip())
        return found

    def down(self) -> None:
        subprocess.run([str(HACK), "down"], check=False, env=self.env)


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr."""


def kubectl(binary: str, kubeconfig: str, *args: str) -> str:
    command = [binary, "--kubeconfig", kubeconfig, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def export_tree(rev: str) -> tuple[pathlib.Path, str]:
    """``operator/`` and ``crds/`` as of ``rev``, extracted with ``git archive``
    (which reads the repository and touches neither the work tree nor the
    index), so a commit can be measured while the work tree is being edited.
    """
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not sha:
        raise SystemExit(f"--operator-rev {rev}: not a commit")
    dest = TREES / sha[:12]
    if not (dest / ".complete").exists():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha, "operator", "crds"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        (dest / ".complete").touch()
    return dest, sha


def apply_crds(binary: str, kubeconfig: str, tree: pathlib.Path, seconds: float = 60) -> None:
    """The CRDs of the operator under test (work tree or --operator-rev),
    then wait until both serve. A CRD just created has no conditions for a
    moment, and `kubectl wait --for=condition` fails on that instead of
    waiting, so the condition is polled here.
    """
    kubectl(binary, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(tree / "crds"))
    query = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + seconds
    for name in ("pipelines.sluice.dev", "pipelineruns.sluice.dev", "backfills.sluice.dev"):
        while kubectl(binary, kubeconfig, "get", "crd", name, "-o", f"jsonpath={query}").strip() != "True":
            if time.monotonic() > deadline:
                raise KubectlError(f"CRD {name} not established after {seconds:.0f}s")
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Operator:
    """The operator as this process's child (``python -m sluice`` from the work
    tree), so its pid is known for /proc and py-spy.
    """

    LEASE = "/apis/coordination.k8s.io/v1/namespaces/default/leases/sluice-operator"

    def __init__(
        self,
        tree: pathlib.Path,
        kubeconfig: str,
        workers: str,
        qps: str,
        log: pathlib.Path,
        metrics_port: int = 0,
        identity: str | None = None,
        lease_seconds: str = "4",
        leader_namespace: str = "default",
    ) -> None:
        # A fixed identity plays one pod whose container restarts (it takes
        # its own lease back at once); a new one plays a new pod.
        self.identity = identity or f"bench-{uuid.uuid4().hex[:6]}"
        self.health_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            # Ahead of the venv's editable install of the work tree's package.
            "PYTHONPATH": str(tree / "operator"),
            "SLUICE_WORKERS": workers,
            "SLUICE_API_QPS": qps,
            "POD_NAME": self.identity,
            "SLUICE_LEADER_NAMESPACE": leader_namespace,
            "SLUICE_LEASE_SECONDS": lease_seconds,
            "SLUICE_RENEW_SECONDS": "1",
        }
        self.log: TextIO = log.open("w")
        command = [sys.executable, "-m", "sluice", "--health-port", str(self.health_port)]
        self.process = subprocess.Popen(
            [*command, "--metrics-port", str(metrics_port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=tree,
        )
        self.metrics_port = metrics_port
        self.pid = self.process.pid

    def is_leader(self, lease: dict[str, Any]) -> bool:
        return bool((lease.get("spec") or {}).get("holderIdentity") == self.identity)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def machine_facts(operator_sha: str | None) -> dict[str, Any]:
    """What a reader needs to compare two result files."""
    meminfo = pathlib.Path("/proc/meminfo").read_text().splitlines()
    mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "operator_commit": operator_sha or git("rev-parse", "HEAD"),
        "operator_source": "git archive of that commit" if operator_sha else "work tree",
        # From the work tree, say whether it differs from the commit.
        "operator_tree_dirty": False
        if operator_sha
        else bool(git("status", "--porcelain", "--", "operator", "crds")),
    }


def prepared(cluster_name: str, operator_rev: str | None) -> tuple[pathlib.Path, str | None, str]:
    """(the tree to run, its commit, the kubeconfig): the benchmark's cluster
    up and this tree's CRDs applied, as every benchmark begins.
    """
    tree, sha = export_tree(operator_rev) if operator_rev else (ROOT, None)
    target = Cluster(cluster_name)
    kubeconfig = target.ensure_up()
    apply_crds(target.kubectl(), kubeconfig, tree)
    return tree, sha, kubeconfig


def save_result(prefix: str, result: dict[str, Any]) -> pathlib.Path:
    """Write ``result`` to bench/results/<prefix>-<time>.json and say where."""
    out = ROOT / "bench" / "results" / f"{prefix}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"saved {out.relative_to(ROOT)}")
    return out
