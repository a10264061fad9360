"""The dashboard's HTTP server (aiohttp): pages, their live updates as
server-sent events, and task logs streamed from the API server.

Every page is rendered by one function of (store, path, query), used both for
the first load and for each update, so a live page always shows exactly what
a reload would.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from sluice.api import labels
from sluice.dashboard import pages
from sluice.dashboard.html import page
from sluice.dashboard.store import Store
from sluice.kube import ApiError, KubeClient
from sluice.views.log_sources import LogSource, log_sources, task_pods
from sluice.views.run_view import run_view

log = logging.getLogger("sluice.dashboard")

# A live page's connection gets a comment this often, so proxies keep it open.
HEARTBEAT_SECONDS = 15.0
# At most this often a page is re-rendered for its viewer, however busy the cluster.
MIN_UPDATE_SECONDS = 0.25
# While a task's container has not started, its pod is looked at this often.
POD_POLL_SECONDS = 1.0
CONTAINER = "task"
# Log streams open at once (each holds an API connection while it runs).
MAX_LOG_STREAMS = 32
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

Render = Callable[[], Any]


class Dashboard:
    def __init__(self, client: KubeClient, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.client = client
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.streams = asyncio.Semaphore(MAX_LOG_STREAMS)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_guard])
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/", self.html(self.overview, "Pipelines")),
                web.get("/ns/{ns}/pipelines/{name}", self.html(self.pipeline, "Pipeline")),
                web.get("/ns/{ns}/runs/{name}", self.html(self.run, "Run")),
                web.get("/live/", self.live(self.overview, self._any_change)),
                web.get("/live/ns/{ns}/pipelines/{name}", self.live(self.pipeline, self._any_change)),
                web.get("/live/ns/{ns}/runs/{name}", self.live(self.run, self._run_version)),
                web.get("/ns/{ns}/runs/{name}/tasks/{task}/log", self.log_page),
                web.get("/ns/{ns}/runs/{name}/tasks/{task}/log/stream", self.log_stream),
            ]
        )
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    # What a live page shows changed when its stamp did (or HEARTBEAT_SECONDS
    # passed, for durations that grow and Events).

    def _any_change(self, _: web.Request) -> object:
        return self.store.version

    def _run_version(self, request: web.Request) -> object:
        found = self.store.runs.get((request.match_info["ns"], request.match_info["name"]))
        return None if found is None else found["metadata"].get("resourceVersion")

    # --- page bodies: None when the object does not exist -----------------------

    async def overview(self, request: web.Request) -> str | None:
        namespace = request.query.get("ns") or None
        chosen = [p for key, p in self.store.pipelines.items() if namespace is None or key[0] == namespace]
        return pages.pipelines_page(chosen, self.store.runs_by_pipeline(namespace), self.clock())

    async def pipeline(self, request: web.Request) -> str | None:
        key = (request.match_info["ns"], request.match_info["name"])
        found = self.store.pipelines.get(key)
        if found is None:
            return None
        runs = self.store.runs_by_pipeline(key[0]).get(key, [])
        return pages.pipeline_page(found, runs, self.clock())

    async def run(self, request: web.Request) -> str | None:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        found = self.store.runs.get((namespace, name))
        if found is None:
            return None
        spec = None
        if not (found.get("status") or {}).get("pipelineSpec"):
            ref = ((found.get("spec") or {}).get("pipelineRef") or {}).get("name")
            spec = (self.store.pipelines.get((namespace, ref)) or {}).get("spec") if ref else None
        events = await self._events(namespace, name)
        return pages.run_page(found, events, self.clock(), request.query.get("task"), spec)

    async def _events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        try:
            listed = await self.client.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/events",
                params={"fieldSelector": f"involvedObject.name={name},involvedObject.kind=PipelineRun"},
            )
        except (ApiError, aiohttp.ClientError, TimeoutError) as error:
            log.warning("events of %s/%s: %s", namespace, name, error)
            return []
        return list(listed.get("items") or ())

    # --- wrappers: whole page, live updates -------------------------------------

    def html(self, body: Callable[[web.Request], Any], title: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            content = await body(request)
            if content is None:
                raise web.HTTPNotFound(text=f"{title} {request.match_info.get('name', '')} not found")
            live = "/live" + request.path_qs
            heading = f"{title} {request.match_info.get('name', '')}".strip()
            return web.Response(text=page(heading, content, live), content_type="text/html")

        return handler

    def live(
        self, body: Callable[[web.Request], Any], stamp: Callable[[web.Request], object]
    ) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            response = await _event_stream(request)
            shown: str | None = None
            shown_stamp: object = ()
            rendered_at = 0.0
            loop = asyncio.get_running_loop()
            while True:
                version = self.store.version
                due = loop.time() - rendered_at >= HEARTBEAT_SECONDS
                if stamp(request) != shown_stamp or due:
                    shown_stamp, rendered_at = stamp(request), loop.time()
                    content = await body(request)
                    if content is None:
                        await _send(response, "gone", "It was deleted.")
                        return response
                    if content != shown:
                        await _send(response, "page", content)
                        shown = content
                    elif due:
                        await response.write(b": still here\n\n")
                await self.store.changed_after(version, HEARTBEAT_SECONDS)
                await asyncio.sleep(MIN_UPDATE_SECONDS)

        return handler

    # --- logs -----------------------------------------------------------------------

    async def log_page(self, request: web.Request) -> web.Response:
        namespace, name, task = (request.match_info[k] for k in ("ns", "name", "task"))
        stream = f"/ns/{namespace}/runs/{name}/tasks/{task}/log/stream"
        if request.query_string:
            stream += f"?{request.query_string}"
        body = pages.log_page(name, task, stream)
        return web.Response(text=page(f"Log {name}/{task}", body), content_type="text/html")

    async def log_stream(self, request: web.Request) -> web.StreamResponse:
        namespace, name, task = (request.match_info[k] for k in ("ns", "name", "task"))
        if (namespace, name) not in self.store.runs:
            raise web.HTTPNotFound(text=f"run {name} not found")
        response = await _event_stream(request)
        if self.streams.locked():
            await _send(response, "end", f"{MAX_LOG_STREAMS} logs are open already: close one and reload")
            return response
        async with self.streams:
            try:
                await self._stream_log(response, namespace, name, task, request)
            except (ApiError, aiohttp.ClientError, TimeoutError) as error:
                await _send(response, "end", f"the log stopped: {error}")
        return response

    async def _pods(self, namespace: str, uid: str, task: str) -> list[dict[str, Any]]:
        selector = f"{labels.RUN_UID}={uid},{labels.TASK}={task}"
        listed = await self.client.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
        )
        return list(listed.get("items") or ())

    async def _source(
        self, response: web.StreamResponse, namespace: str, name: str, task: str, request: web.Request
    ) -> LogSource | None:
        """The log to show, waiting while the task has no pod yet (and its run goes on)."""
        attempt = _number(request.query.get("attempt"))
        instance = _number(request.query.get("instance"))
        while True:
            found = self.store.runs.get((namespace, name))
            if found is None:
                await _send(response, "end", f"run {name} was deleted")
                return None
            view = run_view(found)
            pods = task_pods(await self._pods(namespace, view.uid, task))
            try:
                sources = log_sources(view, pods, task, attempt, instance)
            except LookupError as error:
                await _send(response, "end", str(error))
                return None
            if sources and (sources[0].pod is not None or view.finished_for_good or sources[0].kept):
                return sources[0]
            await _send(response, "status", f"{task}: no pod yet, waiting for the task to start")
            await asyncio.sleep(POD_POLL_SECONDS)

    async def _stream_log(
        self, response: web.StreamResponse, namespace: str, name: str, task: str, request: web.Request
    ) -> None:
        source = await self._source(response, namespace, name, task, request)
        if source is None:
            return
        if source.pod is None:
            await _send(response, "status", source.note or "no pod")
            for line in (source.kept or "").splitlines():
                await _send(response, "line", line)
            await _send(response, "end", source.note or "no pod")
            return
        pod = source.pod
        pod_path = f"/api/v1/namespaces/{namespace}/pods/{pod.name}"
        while not pod.started and pod.phase not in ("Succeeded", "Failed"):
            await _send(response, "status", f"pod {pod.name} is {pod.phase}: waiting for it to start")
            await asyncio.sleep(POD_POLL_SECONDS)
            current = await self.client.get_optional(pod_path)
            if current is None:
                await _send(response, "end", f"pod {pod.name} is gone")
                return
            pod = task_pods([current])[0]
        await _send(response, "status", f"{source.label}: pod {pod.name}, following")
        params = {"container": CONTAINER, "follow": "true"}
        async with self.client.stream(f"{pod_path}/log", params, read_timeout=3600) as upstream:
            if upstream.status >= 300:
                text = (await upstream.read()).decode(errors="replace")
                await _send(response, "end", f"cannot read the log of pod {pod.name}: {text[:300]}")
                return
            async for raw in upstream.content:
                await _send(response, "line", raw.decode(errors="replace").rstrip("\n"))
        await _send(response, "end", f"{source.label}: the container ended")


# Namespaces, names and task names are DNS labels or subdomains: anything else
# in a path is no object of ours (and never reaches an API path).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    if any(not _NAME.match(value) for value in request.match_info.values()):
        raise web.HTTPNotFound(text="no such object")
    response: web.StreamResponse = await handler(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _number(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return response


def frame(event: str, data: str) -> bytes:
    """One server-sent event. Every line break the spec knows (CR, LF, CRLF)
    starts a new ``data:`` line, so nothing in ``data`` can end the event or
    start another one.
    """
    lines = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return f"event: {event}\n{lines}\n".encode()


async def _send(response: web.StreamResponse, event: str, data: str) -> None:
    await response.write(frame(event, data))
