"""Fixtures for integration tests against a real API server.

The cluster: if $KUBECONFIG points at a reachable cluster (say, your kind
cluster), it is used as is. Otherwise the local cluster is brought up with
`hack/cluster up` (kwok nodes), and taken down at the end unless it was
already running or SLUICE_KEEP_CLUSTER=1.

The operator runs as a local process (`python -m sluice`) so tests can
SIGKILL and restart it.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.integration.installed import Installation, helm_binary, install_rbac

ROOT = pathlib.Path(__file__).resolve().parents[2]
HACK = ROOT / "hack" / "cluster"
T = TypeVar("T")


def wait_for(what: str, predicate: Callable[[], T | None], timeout: float = 60, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except ApiException as error:  # transient while objects appear
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def _reachable(kubeconfig: str) -> bool:
    try:
        api = config.new_client_from_config(config_file=kubeconfig)
        client.VersionApi(api).get_code(_request_timeout=5)
        return True
    except Exception:
        return False


# The tests' own kwok cluster: its own state dir and ports, so a demo (real
# node) cluster on the default ones can stay up while the tests run.
TEST_CLUSTER_ENV = {
    "SLUICE_STATE_DIR": str(pathlib.Path.home() / ".local/state/sluice/test-cluster"),
    "SLUICE_APISERVER_PORT": "16543",
    "SLUICE_ETCD_PORT": "12579",
    "SLUICE_KWOK_PORT": "10347",
}


def hack_env() -> dict[str, str]:
    return {**os.environ, **TEST_CLUSTER_ENV}


def _hack(*args: str) -> str:
    return subprocess.run(
        [str(HACK), *args], check=True, capture_output=True, text=True, env=hack_env()
    ).stdout


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    existing = os.environ.get("KUBECONFIG")
    if existing and _reachable(existing):
        yield existing
        return
    env_lines = _hack("env")
    path = next(line.split("=", 1)[1] for line in env_lines.splitlines() if "KUBECONFIG=" in line)
    started = False
    if not _reachable(path):
        subprocess.run([str(HACK), "up", "--nodes", "kwok"], check=True, env=hack_env())
        started = True
    os.environ["KUBECONFIG"] = path
    yield path
    if started and os.environ.get("SLUICE_KEEP_CLUSTER") != "1":
        subprocess.run([str(HACK), "down"], check=False, env=hack_env())


@pytest.fixture(scope="session")
def kubectl_bin(kubeconfig: str) -> str:
    for line in _hack("env").splitlines():
        if line.startswith("export PATH="):
            candidate = pathlib.Path(line.split("=", 1)[1].split(":", 1)[0]) / "kubectl"
            if candidate.exists():
                return str(candidate)
    return "kubectl"


class Kube:
    """Thin helpers over the official client and kubectl, as a user would use them."""

    def __init__(self, kubeconfig: str, kubectl: str) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_bin = kubectl
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def apply(self, namespace: str, *docs: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))

    def run(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "pipelineruns", name
        )
        return obj

    def wait_run(
        self,
        namespace: str,
        name: str,
        phases: tuple[str, ...] = ("Succeeded", "Failed"),
        timeout: float = 90,
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.run(namespace, name)
            status = run.get("status") or {}
            return run if status.get("phase") in phases and status.get("completionTime") else None

        return wait_for(f"run {namespace}/{name} to reach {phases}", done, timeout)

    def pods(self, namespace: str, run: str) -> list[Any]:
        items: list[Any] = self.core.list_namespaced_pod(
            namespace, label_selector=f"sluice.dev/run={run}"
        ).items
        return items

    def wait_events(self, namespace: str, name: str, reasons: set[str], timeout: float = 30) -> list[Any]:
        """The object's Events once all ``reasons`` are among them: Events are
        posted after the status write a test waits on, so they can lag it."""

        def recorded() -> list[Any] | None:
            events = self.events(namespace, name)
            return events if reasons <= {e.reason for e in events} else None

        return wait_for(f"events {sorted(reasons)} on {namespace}/{name}", recorded, timeout)

    def events(self, namespace: str, name: str) -> list[Any]:
        items: list[Any] = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=PipelineRun"
        ).items
        return items


def pipeline_condition(kube: Kube, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    """The Pipeline's condition of type ``kind``, once the operator wrote it."""
    obj = kube.custom.get_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelines", name)
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), None)


@pytest.fixture(scope="session")
def kube(kubeconfig: str, kubectl_bin: str) -> Kube:
    k = Kube(kubeconfig, kubectl_bin)
    k.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for name in ("pipelines.sluice.dev", "pipelineruns.sluice.dev", "backfills.sluice.dev"):
        wait_for(f"CRD {name} to be established", partial(crd_established, k, name))
    return k


def crd_established(kube: Kube, name: str) -> bool:
    """Whether the CRD serves its resource. A CRD just created has no
    conditions at all for a moment (`kubectl wait --for=condition` errors out
    on that instead of waiting), so a missing status reads as "not yet".
    """
    crd = client.ApiextensionsV1Api(kube.api).read_custom_resource_definition(name)
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


SESSION_ID = uuid.uuid4().hex[:6]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """The operator as a child process, so tests can kill and restart it."""

    def __init__(self, kubeconfig: str, log_dir: pathlib.Path, name: str = "operator", **env: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.name = name
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_port = 0

    def start(self) -> None:
        # Two live processes under one identity would both hold the lease.
        assert self.process is None or self.process.poll() is not None, f"{self.name} is already running"
        self.starts += 1
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "SLUICE_PIPELINE_GRACE_SECONDS": "2",
            "PYTHONPATH": str(ROOT / "operator"),
            # Unique per test session (two sessions on one cluster must not
            # share a lease identity), stable across restarts within it.
            "POD_NAME": f"{self.name}-{SESSION_ID}",
            "SLUICE_LEADER_NAMESPACE": "default",
            "SLUICE_LEASE_SECONDS": "4",
            "SLUICE_RENEW_SECONDS": "1",
            **self.env,
        }
        log = open(self.log_dir / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice",
                "--health-port",
                str(free_port()),
                "--metrics-port",
                str(self.metrics_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def log(self) -> pathlib.Path:
        """The log of its latest start."""
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop it on purpose: unlike an exit of its own, the harness does not
        start it again before the next test."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def serve(self, installed: Installation) -> None:
        """(Re)start it as the operator of ``installed``: its token, and the
        one namespace it watches if the release is scoped."""
        self.stop()
        self.kubeconfig = str(installed.kubeconfig)
        self.env.update(installed.operator_env())
        self.start()


@pytest.fixture(scope="session")
def helm(kubectl_bin: str) -> str:
    return helm_binary(kubectl_bin)


@pytest.fixture(scope="session")
def installation(kube: Kube, helm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """The chart's cluster-wide RBAC, in a release namespace of this session."""
    namespace = f"sluice-system-{SESSION_ID}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    directory = tmp_path_factory.mktemp("installation")
    installed = install_rbac(kube, helm, f"sluice-t{SESSION_ID}", namespace, directory)
    yield installed
    installed.uninstall(kube)
    kube.core.delete_namespace(namespace)


@pytest.fixture(scope="session")
def operator_logs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    log_dir = pathlib.Path(os.environ.get("SLUICE_TEST_LOGS") or tmp_path_factory.mktemp("operator-logs"))
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir


# The two ways the chart installs the operator. Every scenario that uses the
# session operator runs under both; ``cluster_scope_only`` keeps a test to the
# cluster-wide one (it starts its own scoped operators, or its subject is the
# cluster-wide install).
SCOPES = ("cluster", "namespace")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "operator" in metafunc.fixturenames:
        only_cluster = metafunc.definition.get_closest_marker("cluster_scope_only")
        # Session scope: pytest runs all of one scope's tests, then the other's,
        # so each scope's operator is set up once.
        metafunc.parametrize("operator_scope", SCOPES[:1] if only_cluster else SCOPES, scope="session")


@dataclass(frozen=True)
class ScopedRelease:
    """The chart installed with ``watchNamespace``: its Role and RoleBinding
    live in the watched namespace, so each test's namespace gets its own."""

    kube: Kube
    helm: str
    release: str
    namespace: str
    directory: pathlib.Path

    def install_for(self, watched: str) -> Installation:
        """Install for ``watched``, and return once the API server's
        authorizer grants the new Role (it learns of RoleBindings from a
        watch of its own, so the first calls could otherwise be denied)."""
        installed = install_rbac(
            self.kube, self.helm, self.release, self.namespace, self.directory, f"watchNamespace={watched}"
        )
        account = f"system:serviceaccount:{self.namespace}:{installed.service_account}"

        def granted() -> bool:
            ask = ("auth", "can-i", "watch", "pods", "-n", watched, "--as", account)
            answer = self.kube.kubectl(*ask, check=False)
            return answer.stdout.strip() == "yes"

        wait_for(f"the scoped Role in {watched} to be in force", granted)
        return installed


@pytest.fixture(scope="session")
def operator(
    operator_scope: str, request: pytest.FixtureRequest, operator_logs: pathlib.Path
) -> Iterator[OperatorProcess]:
    """The operator as installed: the chart's ServiceAccount and RBAC, never
    the admin credentials the tests use to play the user. Cluster-wide, it
    starts now; scoped to a namespace, each test's ``namespace`` starts it
    watching that namespace only, under that namespace's Role.
    """
    if operator_scope == "cluster":
        installation: Installation = request.getfixturevalue("installation")
        process = OperatorProcess(str(installation.kubeconfig), operator_logs, **installation.operator_env())
        process.start()
    else:
        process = OperatorProcess("", operator_logs, name="scoped-operator")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def scoped_release(
    kube: Kube, helm: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScopedRelease]:
    namespace = f"sluice-scoped-{SESSION_ID}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    yield ScopedRelease(kube, helm, f"sluice-s{SESSION_ID}", namespace, tmp_path_factory.mktemp("scoped"))
    kube.core.delete_namespace(namespace)


# How the API server words an authorization denial ("... cannot delete resource
# "pods" in API group ..."); other 403s (a namespace being deleted under a
# test's last Events, a quota) say something else.
@pytest.fixture(autouse=True)
def operator_restarted_if_it_exited(request: pytest.FixtureRequest) -> None:
    """The kubelet's part: an operator that exited by itself (a leader that
    lost its lease while a test restarted the API server or etcd exits, to
    come back as a follower) is started again before the next test.
    """
    if "operator" not in request.fixturenames:
        return
    operator: OperatorProcess = request.getfixturevalue("operator")
    if operator.process is not None and operator.process.poll() is not None:
        operator.start()


FORBIDDEN = re.compile(r"cannot [a-z]+ resource")


@pytest.fixture(autouse=True)
def no_forbidden_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any scenario during which an operator was refused an API call:
    the chart's RBAC must cover every verb the code uses. A test that
    provokes a refusal on purpose is marked ``allows_forbidden``.
    """
    if "operator_logs" not in request.fixturenames or request.node.get_closest_marker("allows_forbidden"):
        yield
        return
    log_dir: pathlib.Path = request.getfixturevalue("operator_logs")
    sizes = {path: path.stat().st_size for path in log_dir.glob("*.log")}
    yield
    refused = []
    for path in sorted(log_dir.glob("*.log")):
        with path.open("rb") as handle:
            handle.seek(sizes.get(path, 0))
            refused += [
                f"{path.name}: {line}"
                for line in handle.read().decode(errors="replace").splitlines()
                if FORBIDDEN.search(line)
            ]
    assert not refused, "the operator was refused API calls:\n" + "\n".join(refused[:10])


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test. Under the namespace-scoped install, the
    session operator is restarted to watch exactly this namespace, with the
    chart's Role in it, and stopped before the namespace (and so its Role)
    goes away."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        f"default service account in {name}",
        lambda: kube.core.read_namespaced_service_account("default", name),
    )
    scoped: OperatorProcess | None = None
    if "operator_scope" in request.fixturenames and request.getfixturevalue("operator_scope") == "namespace":
        scoped = request.getfixturevalue("operator")
        release: ScopedRelease = request.getfixturevalue("scoped_release")
        scoped.serve(release.install_for(name))
    try:
        yield name
        if scoped is not None:
            # A test that needs no pass may end before the operator has logged its start.
            scope = f"watching namespace {name},"
            wait_for(f"the scoped operator's log to say {scope!r}", lambda: scope in scoped.log.read_text())
    finally:
        if scoped is not None:
            scoped.stop()
        kube.core.delete_namespace(name)


@pytest.fixture
def release_namespace(kube: Kube) -> Iterator[str]:
    """A namespace to install a release of the chart into."""
    name = f"sluice-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    kube.core.delete_namespace(name)
