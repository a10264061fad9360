"""Two operator replicas: only the lease holder reconciles; a standby takes over."""

from __future__ import annotations

import pathlib
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
import yaml

from tests.builders import pipeline, run, task
from tests.integration.conftest import HACK, SESSION_ID, Kube, OperatorProcess, hack_env, wait_for
from tests.integration.installed import Installation
from tests.integration.proxy import BlackHoleProxy

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]


def lease_holder(kube: Kube, installation: Installation) -> str | None:
    from kubernetes import client

    api = client.CoordinationV1Api(kube.api)
    lease = api.read_namespaced_lease("sluice-operator", installation.namespace)
    holder: str | None = lease.spec.holder_identity
    return holder


def test_standby_waits_while_the_leader_lives_and_takes_over_when_it_dies(
    kube: Kube,
    operator: OperatorProcess,
    installation: Installation,
    namespace: str,
    operator_logs: pathlib.Path,
) -> None:
    wait_for(
        "the session operator to lead",
        lambda: lease_holder(kube, installation) == f"{operator.name}-{SESSION_ID}",
    )
    standby = OperatorProcess(
        str(installation.kubeconfig), operator_logs, name="standby", **installation.operator_env()
    )
    standby.start()
    try:
        log = standby.log
        wait_for("the standby to wait for the lease", lambda: "waiting for the lease" in log.read_text())
        assert lease_holder(kube, installation) == f"{operator.name}-{SESSION_ID}"
        operator.kill()
        wait_for(
            "the standby to take the lease",
            lambda: lease_holder(kube, installation) == f"standby-{SESSION_ID}",
            timeout=30,
        )
        kube.apply(namespace, pipeline("p", [task("one"), task("two", "one")]), run("after-failover", "p"))
        assert kube.wait_run(namespace, "after-failover")["status"]["phase"] == "Succeeded"
    finally:
        standby.stop()
        operator.start()
    wait_for(
        "the released lease to return to the session operator",
        lambda: lease_holder(kube, installation) == f"{operator.name}-{SESSION_ID}",
    )


LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def first_logged(log: pathlib.Path, text: str) -> datetime | None:
    """When a replica first logged ``text`` (its log lines carry local time)."""
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_TIME.match(line)
        if match and text in line:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return None


class LeaderWatch:
    """Samples each replica's ``sluice_leader`` gauge while the test runs,
    to catch a moment where two say they lead."""

    def __init__(self, replicas: list[OperatorProcess]) -> None:
        self.replicas = replicas
        self.both: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _leading(self, replica: OperatorProcess) -> bool:
        try:
            text = urllib.request.urlopen(
                f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=1
            ).read()
        except OSError:
            return False  # exited, or not serving yet
        return b"\nsluice_leader 1.0" in text

    def _sample(self) -> None:
        while not self.stopped.wait(0.05):
            if sum(self._leading(r) for r in self.replicas) > 1:
                self.both.append(time.monotonic())

    def __enter__(self) -> LeaderWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(5)


@pytest.fixture
def replicas(
    kube: Kube,
    operator: OperatorProcess,
    installation: Installation,
    operator_logs: pathlib.Path,
    tmp_path: pathlib.Path,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start replicas as installed (the chart's token), with the session
    operator stopped; ``through`` points one at another API address."""
    started: list[OperatorProcess] = []
    operator.stop()

    def start(name: str, through: int | None = None) -> OperatorProcess:
        kubeconfig = installation.kubeconfig
        if through is not None:
            config = yaml.safe_load(kubeconfig.read_text())
            config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{through}"
            kubeconfig = tmp_path / f"{name}.kubeconfig"
            kubeconfig.write_text(yaml.safe_dump(config))
        # Logs beside the session operator's, so the RBAC-denial check reads them too.
        replica = OperatorProcess(str(kubeconfig), operator_logs, name=name, **installation.operator_env())
        replica.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()
    operator.start()


def leader_and_standby(
    kube: Kube,
    installation: Installation,
    namespace: str,
    replicas: Callable[..., OperatorProcess],
    prefix: str,
    through: int | None = None,
) -> tuple[OperatorProcess, OperatorProcess]:
    """Two replicas, the first (``through`` a proxy, if given) leading, and a
    run of pipeline "p" finished under them."""
    first = replicas(f"{prefix}-leader", through=through)
    wait_for(
        "the first replica to lead",
        lambda: lease_holder(kube, installation) == f"{prefix}-leader-{SESSION_ID}",
    )
    second = replicas(f"{prefix}-standby")
    kube.apply(namespace, pipeline("p", [task("one"), task("two", "one")]), run("before", "p"))
    assert kube.wait_run(namespace, "before")["status"]["phase"] == "Succeeded"
    return first, second


def test_a_leader_cut_off_from_the_api_server_stops_before_its_standby_takes_over(
    kube: Kube, installation: Installation, namespace: str, replicas: Callable[..., OperatorProcess]
) -> None:
    server = yaml.safe_load(installation.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    proxy = BlackHoleProxy("127.0.0.1", int(server.rsplit(":", 1)[1])).start()
    try:
        first, second = leader_and_standby(kube, installation, namespace, replicas, "cut", proxy.port)
        with LeaderWatch([first, second]) as watch, proxy.partition():
            # Its calls now hang unanswered, the lease renewals included.
            kube.apply(namespace, run("during", "p"))
            wait_for(
                "the standby to take the lease",
                lambda: lease_holder(kube, installation) == f"cut-standby-{SESSION_ID}",
                timeout=30,
            )
            assert kube.wait_run(namespace, "during")["status"]["phase"] == "Succeeded"
            wait_for(
                "the cut-off replica to exit",
                lambda: first.process is not None and first.process.poll() is not None,
            )
        assert watch.both == [], "two replicas reported leading at once"
        stopped = first_logged(first.log, "lost the leader lease")
        took_over = first_logged(second.log, "is the leader")
        assert stopped is not None and took_over is not None and stopped < took_over, (stopped, took_over)
    finally:
        proxy.stop()


# A kube-apiserver that has just restarted answers 403 for a moment, before
# its RBAC caches are filled: a restart's transient denials are no RBAC gap.
@pytest.mark.allows_forbidden
def test_replicas_survive_an_api_server_restart_without_leading_together(
    kube: Kube, installation: Installation, namespace: str, replicas: Callable[..., OperatorProcess]
) -> None:
    first, second = leader_and_standby(kube, installation, namespace, replicas, "restart")
    with LeaderWatch([first, second]) as watch:
        subprocess.run(
            [str(HACK), "restart", "kube-apiserver"], check=True, env=hack_env(), capture_output=True
        )
        kube.apply(namespace, run("after", "p"))
        assert kube.wait_run(namespace, "after", timeout=120)["status"]["phase"] == "Succeeded"
    assert watch.both == [], "two replicas reported leading at once"
    stopped = first_logged(first.log, "lost the leader lease")
    took_over = first_logged(second.log, "is the leader")
    # Either the leader renewed across the restart, or it stopped before
    # the standby took over.
    assert took_over is None or (stopped is not None and stopped < took_over), (stopped, took_over)
