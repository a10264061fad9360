"""A small async Kubernetes REST client for the calls the reconciler makes.

Why not the official client: the reconciler makes a handful of calls (get,
create, merge-patch status, delete, post Event) on the latency path of every
task; a thin aiohttp session reusing kopf's credentials keeps them fast,
typed, and free of a second heavyweight dependency. Client-side rate limits
are explicit settings (see Settings.api_qps), not hidden defaults.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import kopf
import orjson

from sluice.api import v1alpha1 as api

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Answers no retry can change: the operator lacks a permission, or the API
# server (or an admission webhook) refuses what it was sent. Someone must
# act, so they are shown on the object, not only logged.
PERMANENT_STATUSES = frozenset({400, 403, 413, 422})


class ApiError(Exception):
    """A non-2xx answer from the API server, with the call that got it."""

    def __init__(self, status: int, reason: str, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path.split("?", 1)[0]

    @property
    def too_large(self) -> bool:
        """The body passes the API server's or etcd's size limit (etcd's own
        refusal comes back as a 500 that says so).
        """
        return self.status == 413 or (self.status == 500 and "too large" in self.message)

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_STATUSES or self.too_large

    @property
    def resource(self) -> str:
        """The resource called, as RBAC names it: "pods", "pipelineruns/status"."""
        parts = [p for p in self.path.split("/") if p]
        if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
            parts = parts[parts.index("namespaces") + 2 :]
        else:
            parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
        if len(parts) >= 3:
            return f"{parts[0]}/{parts[2]}"
        return parts[0] if parts else ""

    @property
    def verb(self) -> str:
        """The RBAC verb of the call."""
        if self.method == "GET":
            parts = [p for p in self.path.split("/") if p]
            named = len(parts) >= 2 and parts[-2] == self.resource.split("/")[0]
            return "get" if named or "/" in self.resource else "list"
        return VERBS.get(self.method, self.method.lower())

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        return self.status == 409


class NameTaken(ApiError):
    """A create met AlreadyExists, and what exists under that name is not
    ours: retrying cannot help until someone frees the name, so it is shown
    on the object like any refusal for good.
    """

    def __init__(self, method: str, path: str, message: str) -> None:
        super().__init__(409, "NameTaken", message, method, path)

    @property
    def permanent(self) -> bool:
        return True

    @property
    def conflict(self) -> bool:
        return False  # not a stale read: a fresh one meets the same name


class Fenced(Exception):
    """A write refused locally: the replica's leadership has ended."""


class TokenBucket:
    """Client-side request rate limit; qps <= 0 disables it."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.qps <= 0:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.qps)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.qps)


def _materialise(data: bytes | str | None, path: object) -> str | None:
    """Aiohttp's SSL context wants files; kubeconfigs may embed data instead."""
    if path:
        return str(path)
    if data is None:
        return None
    raw = data if isinstance(data, bytes) else data.encode()
    try:
        raw = base64.b64decode(raw, validate=True)
    except ValueError:
        pass
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
    handle.write(raw)
    handle.close()
    return handle.name


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_connection() -> kopf.ConnectionInfo | None:
    """Credentials of the pod's service account, or None outside a pod.

    The API server's address comes from KUBERNETES_SERVICE_HOST/PORT, as in
    client-go: clusters without DNS (or with it broken) must still work.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_path = os.path.join(SERVICE_ACCOUNT_DIR, "token")
    if not host or not os.path.exists(token_path):
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    with open(token_path) as handle:
        token = handle.read().strip()
    namespace_path = os.path.join(SERVICE_ACCOUNT_DIR, "namespace")
    namespace = open(namespace_path).read().strip() if os.path.exists(namespace_path) else None  # noqa: SIM115
    return kopf.ConnectionInfo(
        server=f"https://{host}:{port}",
        ca_path=os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt"),
        scheme="Bearer",
        token=token,
        default_namespace=namespace,
    )


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context(cafile=_materialise(info.ca_data, info.ca_path))
    cert = _materialise(info.certificate_data, info.certificate_path)
    key = _materialise(info.private_key_data, info.private_key_path)
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


class KubeClient:
    """JSON over HTTPS to one API server, with one pooled session."""

    def __init__(self, info: kopf.ConnectionInfo, qps: float = 0, burst: int = 100) -> None:
        self.server = info.server.rstrip("/")
        self.headers = {"Accept": "application/json"}
        self.scheme = info.scheme or "Bearer"
        self.token = info.token
        # In a pod the kubelet rotates the projected token file: re-read it.
        self.token_path = os.path.join(SERVICE_ACCOUNT_DIR, "token") if info.token else None
        self.token_mtime = 0.0
        self.ssl = ssl_context(info)
        self.limiter = TokenBucket(qps, burst)
        self._session: aiohttp.ClientSession | None = None
        # Leader election's fence: while it says no, no write leaves this
        # client (reads still do), even if a worker has not been cancelled yet.
        self.may_write: Callable[[], bool] | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.ssl, limit=64)
            timeout = aiohttp.ClientTimeout(total=30, connect=5)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        await self.limiter.acquire()
        if method != "GET" and self.may_write is not None and not self.may_write():
            raise Fenced(f"{method} {path}: this replica no longer holds the leader lease")
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        self._authorize(headers)
        async with self.session.request(
            method, self.server + path, data=data, headers=headers, params=params
        ) as response:
            raw = await response.read()
            try:
                payload = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                payload = None
            if response.status >= 300:
                text = raw.decode(errors="replace")
                reason = payload.get("reason", "") if isinstance(payload, dict) else ""
                message = payload.get("message", text) if isinstance(payload, dict) else text
                raise ApiError(response.status, reason or response.reason or "", message, method, path)
            return payload

    def _authorize(self, headers: dict[str, str]) -> None:
        token = self._current_token()
        if token:
            headers["Authorization"] = f"{self.scheme} {token}"

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, params: dict[str, str], read_timeout: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A long-lived GET (a watch); the caller reads the body as it comes.
        ``read_timeout`` bounds the silence between two chunks, not the whole.
        """
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=read_timeout)
        headers: dict[str, str] = {}
        self._authorize(headers)
        async with self.session.get(
            self.server + path, params=params, headers=headers, timeout=timeout
        ) as response:
            yield response

    def _current_token(self) -> str | None:
        if self.token_path and os.path.exists(self.token_path):
            mtime = os.stat(self.token_path).st_mtime
            if mtime != self.token_mtime:
                with open(self.token_path) as handle:
                    self.token = handle.read().strip()
                self.token_mtime = mtime
        return self.token

    async def get(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", path)
        return result

    async def get_optional(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (deleted is a normal state)."""
        try:
            return await self.get(path)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", path, body)
        return result

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH", path, body, content_type="application/merge-patch+json"
        )
        return result

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH", path, ops, content_type="application/json-patch+json"
        )
        return result

    async def remove_finalizer(self, path: str, finalizer: str) -> None:
        """Remove one finalizer, leaving any others; an object already gone is fine.

        A strategic merge patch names the value, not its index, so it cannot
        remove someone else's finalizer if the list changed meanwhile.
        """
        body = {"metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer]}}
        try:
            await self.request("PATCH", path, body, content_type="application/strategic-merge-patch+json")
        except ApiError as error:
            if not error.not_found:
                raise

    async def delete(self, path: str, propagation: str = "Background", missing_ok: bool = False) -> None:
        """Delete; with ``missing_ok`` an object already gone is not an error (idempotent stops)."""
        try:
            await self.request("DELETE", path, {"propagationPolicy": propagation})
        except ApiError as error:
            if not (missing_ok and error.not_found):
                raise


def _sluice_path(plural: str, namespace: str, name: str, subresource: str) -> str:
    parts = [f"/apis/{api.API_VERSION}/namespaces/{namespace}/{plural}", name, subresource]
    return "/".join(part for part in parts if part)


def run_path(namespace: str, name: str = "", subresource: str = "") -> str:
    return _sluice_path(api.PIPELINE_RUNS, namespace, name, subresource)


def pipeline_path(namespace: str, name: str = "", subresource: str = "") -> str:
    return _sluice_path(api.PIPELINES, namespace, name, subresource)


def backfill_path(namespace: str, name: str = "", subresource: str = "") -> str:
    return _sluice_path(api.BACKFILLS, namespace, name, subresource)


def pods_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


def claims_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"


def asset_path(namespace: str, name: str = "", subresource: str = "") -> str:
    return _sluice_path(api.ASSETS, namespace, name, subresource)


def trigger_path(namespace: str, name: str = "", subresource: str = "") -> str:
    return _sluice_path(api.TRIGGERS, namespace, name, subresource)
