"""The operator's identity as the Helm chart installs it: its ServiceAccount,
its (Cluster)Role and bindings, and a kubeconfig holding that account's
token. Tests run the operator with it, so a verb missing from the chart's
RBAC fails the scenario that needs it, as it would on a real install.
"""

from __future__ import annotations

import base64
import pathlib
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml


class Admin(Protocol):
    """Who installs: kubectl with the admin's kubeconfig (the tests' Kube,
    or the chaos benchmark's)."""

    @property
    def kubeconfig(self) -> str: ...

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]: ...


CHART = pathlib.Path(__file__).resolve().parents[2] / "helm" / "sluice"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def helm_binary(kubectl_bin: str) -> str:
    """The helm that `hack/cluster build` built beside kubectl."""
    path = pathlib.Path(kubectl_bin).parent.parent.parent
    candidates = sorted(path.glob("helm-*/bin/helm"))
    assert candidates, "helm is not built: run hack/cluster build"
    return str(candidates[-1])


def render(helm: str, release: str, namespace: str, *sets: str) -> str:
    args = [helm, "template", release, str(CHART), "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True)
class Installation:
    """One release's RBAC in the cluster, and how to act as its operator."""

    release: str
    namespace: str
    kubeconfig: pathlib.Path
    documents: tuple[dict[str, Any], ...]
    # The chart's ValidatingWebhookConfiguration (not applied: a test that
    # wants it applies it pointing at the local operator), and the port the
    # operator serves it on.
    webhook: dict[str, Any] | None = None
    webhook_port: int = field(default=0)

    @property
    def service_account(self) -> str:
        return str(next(d["metadata"]["name"] for d in self.documents if d["kind"] == "ServiceAccount"))

    @property
    def watched_namespace(self) -> str:
        """The one namespace a ``watchNamespace`` install serves; "" for cluster-wide."""
        return next(
            (
                d["metadata"]["namespace"]
                for d in self.documents
                if d["kind"] == "RoleBinding"
                and not d["metadata"]["name"].endswith("-leader-election")
                and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") != "webhook"
            ),
            "",
        )

    def operator_env(self) -> dict[str, str]:
        """Settings the chart's Deployment gives the operator that the tests keep."""
        env = {"SLUICE_LEADER_NAMESPACE": self.namespace, "SLUICE_NAMESPACE": self.watched_namespace}
        if self.webhook is not None:
            env |= {
                "SLUICE_WEBHOOK_PORT": str(self.webhook_port),
                "SLUICE_WEBHOOK_SECRET": f"{self.webhook['metadata']['name']}-webhook-tls",
                "SLUICE_WEBHOOK_SERVICE": f"{self.webhook['metadata']['name']}-webhook",
                "SLUICE_WEBHOOK_CONFIGURATION": self.webhook["metadata"]["name"],
                # The local API server calls the local operator by address.
                "SLUICE_WEBHOOK_HOSTS": "127.0.0.1",
                "SLUICE_WEBHOOK_CERT_DIR": str(self.kubeconfig.parent / f"{self.release}-webhook"),
            }
        return env

    def uninstall(self, kube: Admin) -> None:
        cluster_scoped = [d for d in self.documents if d["kind"].startswith("Cluster")]
        for doc in cluster_scoped:
            kube.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found")


def install_rbac(
    kube: Admin, helm: str, release: str, namespace: str, directory: pathlib.Path, *sets: str
) -> Installation:
    """Apply the chart's RBAC for ``release`` into ``namespace`` (which must
    exist) and write a kubeconfig with its ServiceAccount's token.
    """
    rendered = [doc for doc in yaml.safe_load_all(render(helm, release, namespace, *sets)) if doc]
    documents = tuple(doc for doc in rendered if doc["kind"] in RBAC_KINDS)
    # The webhook's Secret, which the operator fills with its certificates.
    secrets = [doc for doc in rendered if doc["kind"] == "Secret"]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([*documents, *secrets]))
    webhook = next((doc for doc in rendered if doc["kind"] == "ValidatingWebhookConfiguration"), None)
    installation = Installation(
        release,
        namespace,
        directory / f"{release}.kubeconfig",
        documents,
        webhook,
        _free_port() if webhook is not None else 0,
    )
    token = kube.kubectl(
        "create", "token", installation.service_account, "-n", namespace, "--duration", "12h"
    ).stdout.strip()
    installation.kubeconfig.write_text(yaml.safe_dump(token_kubeconfig(kube.kubeconfig, token, namespace)))
    return installation


def install_component_rbac(
    kube: Admin, helm: str, release: str, namespace: str, directory: pathlib.Path, component: str
) -> Installation:
    """Apply the chart's RBAC of one of its servers (``triggers``,
    ``dashboard``: enabled for the render) for ``release`` into
    ``namespace``, with a kubeconfig holding its ServiceAccount's token.
    """
    documents = [
        doc
        for doc in yaml.safe_load_all(render(helm, release, namespace, f"{component}.enabled=true"))
        if doc
        and doc["kind"] in RBAC_KINDS
        and (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component
    ]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    account = next(d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount")
    token = kube.kubectl("create", "token", account, "-n", namespace, "--duration", "12h").stdout.strip()
    path = directory / f"{release}-{component}.kubeconfig"
    path.write_text(yaml.safe_dump(token_kubeconfig(kube.kubeconfig, token, namespace)))
    return Installation(release, namespace, path, tuple(documents))


def install_triggers_rbac(
    kube: Admin, helm: str, release: str, namespace: str, directory: pathlib.Path
) -> Installation:
    """The triggers server's RBAC and token (see ``install_component_rbac``)."""
    return install_component_rbac(kube, helm, release, namespace, directory, "triggers")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token_kubeconfig(admin_kubeconfig: str, token: str, namespace: str) -> dict[str, Any]:
    """The admin kubeconfig's cluster, with a bearer token as the only user."""
    config = yaml.safe_load(pathlib.Path(admin_kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = (
        base64.b64encode(pathlib.Path(cluster["certificate-authority"]).read_bytes()).decode()
        if "certificate-authority" in cluster
        else cluster.get("certificate-authority-data")
    )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "operator",
        "clusters": [
            {"name": "c", "cluster": {"server": cluster["server"], "certificate-authority-data": ca}}
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": "c", "user": "operator", "namespace": namespace}}
        ],
    }
