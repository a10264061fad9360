"""A minimal async Kubernetes client: JSON requests and watches over aiohttp.

Why not the official client: it turns every watch event into model objects,
which costs several times the CPU of ``json.loads``; the benchmark shares two
cores with the operator, the API server and etcd, so its own cost is noise
in what it measures. Credentials are still read with the official
kubeconfig loader, so any kubeconfig the tests accept works here.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

# A watch handler gets the event type, the object and the monotonic time at
# which this process received the event.
Handler = Callable[[str, dict[str, Any], float], None]


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {_message(body)}")
        self.status = status


def _message(body: str) -> str:
    """A Status object's message (what kubectl would print), else the body's start."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or body)[:400]


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is and how to authenticate to it."""

    server: str
    ssl: ssl.SSLContext
    headers: dict[str, str]


def load_endpoint(kubeconfig: str) -> Endpoint:
    """Read a kubeconfig with the official loader (which also materialises
    embedded certificates as files) and turn it into an aiohttp SSL context.
    """
    cfg = k8s_client.Configuration()
    load: Callable[..., None] = k8s_config.load_kube_config  # the package has no type hints
    load(config_file=kubeconfig, client_configuration=cfg)
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    headers = {"Accept": "application/json"}
    token = (cfg.api_key or {}).get("authorization")
    if token:
        headers["Authorization"] = token
    return Endpoint(cfg.host.rstrip("/"), context, headers)


class Kube:
    """JSON over one pooled aiohttp session; watches get their own session so
    that long-lived streams never hold connections the creates need.
    """

    def __init__(self, endpoint: Endpoint, connections: int = 128) -> None:
        self.endpoint = endpoint
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None

    def _new_session(self, limit: int, total: float | None) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.endpoint.ssl, limit=limit)
        return aiohttp.ClientSession(
            connector=connector,
            headers=self.endpoint.headers,
            timeout=aiohttp.ClientTimeout(total=total, connect=10),
            # Watch lines are whole objects; a pod with managedFields is ~5 KB,
            # a 500-task run's status far more.
            read_bufsize=1 << 22,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._new_session(self.connections, total=60)
        return self._session

    @property
    def watch_session(self) -> aiohttp.ClientSession:
        if self._watch_session is None:
            self._watch_session = self._new_session(0, total=None)
        return self._watch_session

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One request; raises ApiError on a non-2xx answer."""
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        async with self.session.request(
            method, self.endpoint.server + path, data=data, params=params, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 300:
                raise ApiError(response.status, method, path, text)
            result: dict[str, Any] = json.loads(text) if text else {}
            return result

    async def get_optional(self, path: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body)

    async def delete(self, path: str) -> None:
        """Delete, treating "already gone" as done."""
        try:
            await self.request("DELETE", path, {"propagationPolicy": "Background"})
        except ApiError as error:
            if error.status != 404:
                raise

    async def watch(
        self,
        path: str,
        handle: Handler,
        params: dict[str, str] | None = None,
        ready: asyncio.Event | None = None,
    ) -> None:
        """List then watch ``path`` until cancelled, calling ``handle`` for every
        object; ``ready`` is set once the first list is in, so a caller can
        create objects knowing none of their events will be missed.

        Objects found by a list are handed over as ADDED at the list's time
        (after a 410 Gone that can mean late, but such a relist is rare and
        the scenario's figures would show it).
        """
        params = dict(params or {})
        while True:
            listing = await self.request("GET", path, params=params)
            now = time.monotonic()
            for item in listing.get("items") or ():
                handle("ADDED", item, now)
            version = listing["metadata"]["resourceVersion"]
            if ready is not None:
                ready.set()
            await self._stream(path, params, version, handle)

    async def _stream(self, path: str, params: dict[str, str], version: str, handle: Handler) -> None:
        """Watch from ``version`` across server-side timeouts and dropped
        connections; returns when the version is too old (410) and the caller
        must list again.
        """
        while True:
            query = {
                **params,
                "watch": "true",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            }
            try:
                async with self.watch_session.get(self.endpoint.server + path, params=query) as response:
                    if response.status >= 300:
                        raise ApiError(response.status, "WATCH", path, await response.text())
                    # Split lines ourselves: a big run's event is longer than
                    # aiohttp's line buffer.
                    buffer = b""
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            if not line.strip():
                                continue
                            now = time.monotonic()
                            event = json.loads(line)
                            kind, obj = event["type"], event["object"]
                            if kind == "ERROR":
                                if obj.get("code") == 410:
                                    return
                                raise ApiError(obj.get("code") or 500, "WATCH", path, json.dumps(obj))
                            version = obj["metadata"]["resourceVersion"]
                            if kind != "BOOKMARK":
                                handle(kind, obj, now)
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
                continue  # resume from the last version seen

    async def wait_for_object(
        self,
        collection: str,
        name: str,
        present: bool,
        seconds: float,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> None:
        """Wait until the object ``name`` in ``collection`` exists and satisfies
        ``predicate`` (present=True) or is gone (present=False), by watching it;
        raises TimeoutError at the deadline.
        """
        done = asyncio.Event()

        def on_event(kind: str, obj: dict[str, Any], _now: float) -> None:
            if present and kind != "DELETED" and predicate(obj):
                done.set()
            if not present and kind == "DELETED":
                done.set()

        listed = asyncio.Event()
        watcher = asyncio.create_task(
            self.watch(collection, on_event, params={"fieldSelector": f"metadata.name={name}"}, ready=listed)
        )
        try:
            async with asyncio.timeout(seconds):
                await first_of(listed.wait(), watcher)
                # The watch covers every change after its list; this read covers
                # the state before it.
                obj = await self.get_optional(f"{collection}/{name}")
                if (obj is not None and predicate(obj)) if present else obj is None:
                    return
                await first_of(done.wait(), watcher)
        except TimeoutError:
            state = "appear" if present else "disappear"
            raise TimeoutError(f"{collection}/{name} did not {state} within {seconds:.0f}s") from None
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def first_of(wait: Awaitable[Any], watcher: asyncio.Task[None]) -> None:
    """Return when ``wait`` completes; re-raise at once if the watch that
    would complete it dies first, rather than waiting out a deadline.
    """
    waiter = asyncio.ensure_future(wait)
    try:
        finished, _ = await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher in finished:
            watcher.result()
    finally:
        waiter.cancel()
