"""The Helm chart and the rendered manifests: lint, server-side validation,
and RBAC that is exactly enough for the operator to do its job."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import yaml
from kubernetes import client

from tests.integration.conftest import ROOT, Kube
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


@pytest.mark.parametrize("namespaced", [False, True])
def test_chart_passes_server_side_validation(
    kube: Kube, helm: str, release_namespace: str, namespaced: bool
) -> None:
    mode = [f"watchNamespace={release_namespace}"] if namespaced else []
    manifests = render(helm, release_namespace, *mode)
    result = kube.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifests, check=False)
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/sluice created (server dry run)" in result.stdout


def test_a_misspelt_webhook_setting_is_refused_by_helm_not_by_the_api_server(helm: str) -> None:
    for setting, says in (
        ("webhook.failurePolicy=fail", "value must be one of 'Ignore', 'Fail'"),
        ("webhook.timeoutSeconds=60", "maximum: got 60, want 30"),
    ):
        result = subprocess.run(
            [helm, "template", "sluice", str(CHART), "--set", setting],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0 and says in result.stderr, result.stderr


def test_rbac_has_no_wildcards(helm: str) -> None:
    for doc in yaml.safe_load_all(render(helm, "sluice-system")):
        if doc and doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], (doc["metadata"]["name"], rule)


def test_a_namespace_scoped_install_grants_nothing_cluster_wide(helm: str) -> None:
    """What the scoped install may do is proven by every scenario, which runs
    under it too (see ``SCOPES`` in conftest); here, that it asks for no more:
    no ClusterRole, and the reconcile Role only in the watched namespace."""
    documents = [d for d in yaml.safe_load_all(render(helm, "sluice-system", "watchNamespace=etl")) if d]
    rbac = {(d["kind"], d["metadata"].get("namespace")) for d in documents if "Role" in d["kind"]}
    assert rbac == {
        ("Role", "etl"),
        ("RoleBinding", "etl"),
        ("Role", "sluice-system"),
        ("RoleBinding", "sluice-system"),
    }
    leader_rules = next(
        d["rules"] for d in documents if d["kind"] == "Role" and d["metadata"]["namespace"] == "sluice-system"
    )
    assert {r for rule in leader_rules for r in rule["resources"]} == {"leases"}


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
