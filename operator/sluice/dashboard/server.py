"""The dashboard's HTTP server (aiohttp): pages, their live updates as
server-sent events, and task logs streamed from the API server.

Every page is rendered by one function of (store, path, query), used both for
the first load and for each update, so a live page always shows exactly what
a reload would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sluice.api import labels
from sluice.dashboard import pages
from sluice.dashboard.html import page
from sluice.dashboard.store import Store
from sluice.kube import ApiError, KubeClient
from sluice.views.log_sources import log_sources, task_pods
from sluice.views.run_view import run_view

log = logging.getLogger("sluice.dashboard")

# A live page's connection gets a comment this often, so proxies keep it open.
HEARTBEAT_SECONDS = 15.0
# At most this often a page is re-rendered for its viewer, however busy the cluster.
MIN_UPDATE_SECONDS = 0.25
# While a task's container has not started, its pod is looked at this often.
POD_POLL_SECONDS = 1.0
CONTAINER = "task"

Render = Callable[[], Any]


class Dashboard:
    def __init__(self, client: KubeClient, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.client = client
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/", self.html(self.overview, "Pipelines")),
                web.get("/ns/{ns}/pipelines/{name}", self.html(self.pipeline, "Pipeline")),
                web.get("/ns/{ns}/runs/{name}", self.html(self.run, "Run")),
                web.get("/live/", self.live(self.overview)),
                web.get("/live/ns/{ns}/pipelines/{name}", self.live(self.pipeline)),
                web.get("/live/ns/{ns}/runs/{name}", self.live(self.run)),
                web.get("/ns/{ns}/runs/{name}/tasks/{task}/log", self.log_page),
                web.get("/ns/{ns}/runs/{name}/tasks/{task}/log/stream", self.log_stream),
            ]
        )
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

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
        except ApiError as error:
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

    def live(self, body: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            response = await _event_stream(request)
            shown: str | None = None
            while True:
                version = self.store.version
                content = await body(request)
                if content is None:
                    await _send(response, "page", "<p>It was deleted.</p>")
                    return response
                if content != shown:
                    await _send(response, "page", content)
                    shown = content
                if not await self.store.changed_after(version, HEARTBEAT_SECONDS):
                    await response.write(b": still here\n\n")  # also re-renders durations
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
        attempt = _number(request.query.get("attempt"))
        instance = _number(request.query.get("instance"))
        found = self.store.runs.get((namespace, name))
        if found is None:
            raise web.HTTPNotFound(text=f"run {name} not found")
        response = await _event_stream(request)
        view = run_view(found)
        selector = f"{labels.RUN_UID}={view.uid},{labels.TASK}={task}"
        listed = await self.client.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
        )
        try:
            sources = log_sources(view, task_pods(listed.get("items") or ()), task, attempt, instance)
        except LookupError as error:
            await _send(response, "end", str(error))
            return response
        if not sources:
            await _send(response, "end", f"{task}: nothing to show yet")
            return response
        source = sources[0]
        if source.pod is None:
            await _send(response, "status", source.note or "no pod")
            for line in (source.kept or "").splitlines():
                await _send(response, "line", line)
            await _send(response, "end", source.note or "no pod")
            return response
        pod = source.pod
        pod_path = f"/api/v1/namespaces/{namespace}/pods/{pod.name}"
        while not pod.started:
            await _send(response, "status", f"pod {pod.name} is {pod.phase}: waiting for it to start")
            await asyncio.sleep(POD_POLL_SECONDS)
            current = await self.client.get_optional(pod_path)
            if current is None:
                await _send(response, "end", f"pod {pod.name} is gone")
                return response
            pod = task_pods([current])[0]
        await _send(response, "status", f"{source.label}: pod {pod.name}, following")
        params = {"container": CONTAINER, "follow": "true"}
        async with self.client.stream(f"{pod_path}/log", params, read_timeout=3600) as upstream:
            if upstream.status >= 300:
                text = (await upstream.read()).decode(errors="replace")
                await _send(response, "end", f"cannot read the log of pod {pod.name}: {text[:300]}")
                return response
            async for raw in upstream.content:
                await _send(response, "line", raw.decode(errors="replace").rstrip("\n"))
        await _send(response, "end", f"{source.label}: the container ended")
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


async def _send(response: web.StreamResponse, event: str, data: str) -> None:
    lines = "".join(f"data: {line}\n" for line in (data.split("\n") or [""]))
    await response.write(f"event: {event}\n{lines}\n".encode())
