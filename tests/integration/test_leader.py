"""Two operator replicas: only the lease holder reconciles; a standby takes over."""

from __future__ import annotations

import pathlib

import pytest

from tests.builders import pipeline, run, task
from tests.integration.conftest import SESSION_ID, Kube, OperatorProcess, wait_for
from tests.integration.installed import Installation

pytestmark = pytest.mark.integration


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
    tmp_path: pathlib.Path,
) -> None:
    wait_for(
        "the session operator to lead",
        lambda: lease_holder(kube, installation) == f"{operator.name}-{SESSION_ID}",
    )
    standby = OperatorProcess(
        str(installation.kubeconfig), tmp_path, name="standby", **installation.operator_env()
    )
    standby.start()
    try:
        log = tmp_path / "standby-1.log"
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
