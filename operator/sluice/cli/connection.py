"""The user's connection, as kubectl would make it: the kubeconfig
(``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``; in a pod
with none, the pod's ServiceAccount), the context (``--context``, else the
current one) and the namespace (``-n``, else the context's, else
``default``). Only the user's own credentials are ever used.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from kubernetes import config as _config
from kubernetes.config.config_exception import ConfigException

# The client's config loaders are untyped; its API objects are used for raw
# JSON (``_preload_content=False``), not for its typed models.
config: Any = cast(Any, _config)

GROUP = "sluice.dev"
VERSION = "v1alpha1"
_IN_CLUSTER_NAMESPACE = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class UsageError(Exception):
    """A mistake of the caller's (exit code 2), not a failure of the cluster's."""


@dataclass
class Session:
    """The API clients and the namespace the command works in."""

    api: client.ApiClient
    namespace: str
    all_namespaces: bool = False

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """One Sluice object as a plain dict."""
        response = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace or self.namespace, plural, name, _preload_content=False
        )
        found: dict[str, Any] = json.loads(response.data)
        return found

    def list(self, plural: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Sluice objects of the namespace (all of them with ``-A``), paginated."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"limit": 500, "_preload_content": False}
            if token:
                extra["_continue"] = token
            if label_selector:
                extra["label_selector"] = label_selector
            if self.all_namespaces:
                response = self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **extra)
            else:
                response = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, **extra
                )
            page = json.loads(response.data)
            items.extend(page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = current
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts))
            raise UsageError(f'context "{context}" is not in the kubeconfig (contexts: {names})')
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
) -> Session:
    """A session for the given kubectl-style options."""
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        default_namespace = _context_namespace(kubeconfig, context)
    except ConfigException as error:
        if kubeconfig is not None or context is not None or not _IN_CLUSTER_NAMESPACE.exists():
            raise UsageError(f"cannot load the kubeconfig: {error}") from error
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        api = client.ApiClient(configuration)
        default_namespace = _IN_CLUSTER_NAMESPACE.read_text().strip()
    return Session(api, namespace or default_namespace, all_namespaces)
