"""The Helm chart and the rendered manifests: lint, server-side validation,
and RBAC that is exactly enough for the operator to do its job."""

from __future__ import annotations

import pathlib
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from tests.builders import pipeline, run, task
from tests.integration.conftest import FORBIDDEN, ROOT, Kube, OperatorProcess, wait_for
from tests.integration.installed import install_rbac
from tests.integration.installed import render as render_chart

pytestmark = pytest.mark.integration
CHART = ROOT / "helm" / "sluice"


def render(helm: str, namespace: str, *sets: str) -> str:
    return render_chart(helm, "sluice", namespace, *sets)


@pytest.mark.parametrize(
    "mode",
    [[], ["watchNamespace=etl"], ["replicaCount=1", "leaderElection.enabled=false"], ["replicaCount=3"]],
)
def test_chart_lints(helm: str, mode: list[str]) -> None:
    sets = [arg for value in mode for arg in ("--set", value)]
    result = subprocess.run([helm, "lint", str(CHART), *sets], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (["replicaCount=2", "leaderElection.enabled=false"], "needs leaderElection.enabled=true"),
        (["leaderElection.leaseSeconds=5", "leaderElection.renewSeconds=5"], "must be less than"),
    ],
)
def test_chart_refuses_settings_that_would_split_the_brain(helm: str, mode: list[str], why: str) -> None:
    sets = [arg for value in mode for arg in ("--set", value)]
    result = subprocess.run(
        [helm, "template", str(CHART), *sets], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and why in result.stderr


def test_rendered_manifests_match_the_chart() -> None:
    expected = subprocess.run(
        [str(ROOT / "hack" / "gen-manifests"), "--print"], check=True, capture_output=True, text=True
    ).stdout
    assert (ROOT / "manifests" / "install.yaml").read_text() == expected, "run hack/gen-manifests"


@pytest.fixture
def release_namespace(kube: Kube) -> Iterator[str]:
    name = f"sluice-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    kube.core.delete_namespace(name)


@pytest.mark.parametrize("namespaced", [False, True])
def test_chart_passes_server_side_validation(
    kube: Kube, helm: str, release_namespace: str, namespaced: bool
) -> None:
    mode = [f"watchNamespace={release_namespace}"] if namespaced else []
    manifests = render(helm, release_namespace, *mode)
    result = kube.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifests, check=False)
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/sluice created (server dry run)" in result.stdout


def test_rbac_has_no_wildcards(helm: str) -> None:
    for doc in yaml.safe_load_all(render(helm, "sluice-system")):
        if doc and doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], (doc["metadata"]["name"], rule)


def test_operator_runs_a_pipeline_with_only_the_charts_namespaced_rbac(
    kube: Kube,
    helm: str,
    release_namespace: str,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    """Run a second operator as the chart's service account, scoped to one
    namespace; the session operator must not interfere, so it stops first."""
    installed = install_rbac(kube, helm, "sluice", release_namespace, tmp_path, f"watchNamespace={namespace}")
    assert {d["kind"] for d in installed.documents} == {"ServiceAccount", "Role", "RoleBinding"}
    operator.stop()
    scoped = OperatorProcess(
        str(installed.kubeconfig),
        tmp_path,
        name="scoped",
        SLUICE_NAMESPACE=namespace,
        **installed.operator_env(),
    )
    scoped.start()
    try:
        # Every verb the operator uses on a run's way: create pods, release
        # their finalizers (patch), stop pods (delete), delete a run (TTL).
        kube.apply(
            namespace,
            pipeline("rbac", [task("a"), task("b", "a")]),
            pipeline("rbac-long", [task("long", duration="10m")]),
            run("rbac-1", "rbac"),
            run("rbac-brief", "rbac", ttlSecondsAfterFinished=0),
            run("rbac-cancel", "rbac-long"),
        )
        assert kube.wait_run(namespace, "rbac-1")["status"]["phase"] == "Succeeded"
        wait_for(
            "finalizers released",
            lambda: all(not p.metadata.finalizers for p in kube.pods(namespace, "rbac-1")),
        )
        wait_for("the long task to run", lambda: kube.pods(namespace, "rbac-cancel"))
        kube.kubectl(
            "patch",
            "pipelinerun",
            "rbac-cancel",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"cancelled":true}}',
        )
        assert (
            kube.wait_run(namespace, "rbac-cancel", phases=("Cancelled",))["status"]["phase"] == "Cancelled"
        )
        wait_for("the stopped pod to be gone", lambda: not kube.pods(namespace, "rbac-cancel"))
        wait_for(
            "the brief run to be deleted with its pods",
            lambda: (
                not kube.pods(namespace, "rbac-brief")
                and not [
                    r
                    for r in kube.custom.list_namespaced_custom_object(
                        "sluice.dev", "v1alpha1", namespace, "pipelineruns"
                    )["items"]
                    if r["metadata"]["name"] == "rbac-brief"
                ]
            ),
        )
        log = (tmp_path / "scoped-1.log").read_text()
        assert not FORBIDDEN.search(log), log[-3000:]
    finally:
        scoped.stop()
        operator.start()
    wait_for(
        "session operator back", lambda: operator.process is not None and operator.process.poll() is None
    )


def test_operator_pod_meets_the_restricted_pod_security_standard(kube: Kube, helm: str) -> None:
    name = f"sluice-pss-{uuid.uuid4().hex[:6]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    try:
        result = kube.kubectl("apply", "--dry-run=server", "-f", "-", stdin=render(helm, name), check=False)
        assert result.returncode == 0, result.stderr
        assert "PodSecurity" not in result.stderr, result.stderr
    finally:
        kube.core.delete_namespace(name)
