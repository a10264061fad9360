"""The triggers server: receives events over HTTP and starts runs.

Stateless on purpose: what it knows of Triggers and Pipelines comes from
watches, the signing key is read per event (a rotated Secret applies at
once), and a redelivered event is recognised by its run's deterministic
name (AlreadyExists), so replicas need no election and a restart loses
nothing. The answer is sent as soon as the run exists; the Pipeline's
Event and the Trigger's status follow in the background, off the path a
sender waits on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Histogram

from sluice.api import labels
from sluice.api.v1alpha1 import GROUP, PIPELINES, TRIGGERS, VERSION, Condition, TriggerSpec
from sluice.engine.clock import now_rfc3339
from sluice.engine.conditions import condition, set_condition
from sluice.events import EventRecorder
from sluice.informer import Informer
from sluice.kube import ApiError, KubeClient, run_path, trigger_path
from sluice.triggers.expressions import MappingError
from sluice.triggers.plan import (
    KEY_DIGEST_ANNOTATION,
    NewRun,
    Refusal,
    key_digest,
    mapping_problem,
    plan_event,
    run_limit,
)
from sluice.triggers.ratelimit import SlidingWindow
from sluice.triggers.signature import key_problem, normalised_key

log = logging.getLogger("sluice.triggers")

EVENTS = Counter(
    "sluice_trigger_events_total",
    "Events received by Triggers: accepted (a run started), deduplicated (its run already existed) "
    "or refused (reason says why).",
    ["namespace", "trigger", "result", "reason"],
)
LATENCY = Histogram(
    "sluice_trigger_request_duration_seconds",
    "From a request's arrival to its answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
REFUSAL_EVENT_SECONDS = 60.0  # at most one Warning Event per trigger and reason per minute
STATUS_SECONDS = 5.0
BODY_SECONDS = 30.0  # a body must arrive within this (slow senders hold no connection for ever)
BODY_CHUNK = 65536
KEY_SECONDS = 10.0  # a Trigger's key is read again after this long
KEY_MIN_SECONDS = 1.0  # and never more often than this
STATUS_REFRESH_SECONDS = 60.0  # Ready is checked again this often (a Secret created later)


@dataclass
class Seen:
    """What the status writer reports for one Trigger."""

    last_run: str | None = None
    last_event_time: str | None = None
    dirty: bool = True
    written_at: float = 0.0


@dataclass
class TriggerServer:
    client: KubeClient
    namespace: str | None  # None: every namespace
    max_body_bytes: int = 1024 * 1024
    triggers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    window: SlidingWindow = field(default_factory=SlidingWindow)
    seen: dict[tuple[str, str], Seen] = field(default_factory=dict)
    refusals_told: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # (namespace, Secret, key) -> (the key or None, why not, when read)
    keys: dict[tuple[str, str, str], tuple[bytes | None, str | None, float]] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.events = EventRecorder(self.client)

    # --- watches ------------------------------------------------------------------

    def _keep(self, store: dict[tuple[str, str], dict[str, Any]], kind: str) -> Any:
        def handle(event: str, obj: dict[str, Any]) -> None:
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            if event == "DELETED":
                store.pop(key, None)
                if kind == "Trigger":
                    self.seen.pop(key, None)
            else:
                before = store.get(key)
                store[key] = {**obj, "kind": kind}
                changed = before is None or before["metadata"].get("generation") != meta.get("generation")
                if kind == "Trigger" and changed:
                    # Not for status-only changes (ours, another replica's):
                    # replicas must not answer each other's writes.
                    self.seen.setdefault(key, Seen()).dirty = True

        return handle

    async def start_watches(self) -> list[asyncio.Task[None]]:
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        group = f"/apis/{GROUP}/{VERSION}{scope}"
        informers = [
            Informer(
                self.client, f"{group}/{TRIGGERS}", self._keep(self.triggers, "Trigger"), name="triggers"
            ),
            Informer(
                self.client, f"{group}/{PIPELINES}", self._keep(self.pipelines, "Pipeline"), name="pipelines"
            ),
        ]
        tasks = []
        for informer in informers:
            await informer.list()
            tasks.append(asyncio.create_task(informer.run()))
        self.synced.set()
        return tasks

    # --- requests -----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/v1/namespaces/{namespace}/triggers/{name}", self.receive)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        if not self.synced.is_set():
            return web.Response(status=503, text="watches not synced yet")
        return web.Response(text="ok")

    async def receive(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        trigger = self.triggers.get((namespace, name))
        try:
            if trigger is None:
                # Neither the name nor the namespace of an unknown trigger
                # becomes a metric label: made-up URLs make no new series.
                return self._refused("", "", Refusal(404, "not_found", f"no trigger {namespace}/{name}"))
            body = await self._body(request)
            if isinstance(body, Refusal):
                return self._refused(name, namespace, body, trigger)
            return await self._handle(trigger, request, body)
        except (aiohttp.ClientError, TimeoutError) as error:
            # The API server could not be reached: worth retrying.
            log.warning("trigger %s/%s: the API server did not answer: %s", namespace, name, error)
            refusal = Refusal(502, "api_unreachable", "the API server could not be reached; retry")
            return self._refused(name if trigger else "", namespace if trigger else "", refusal)
        except Exception:
            log.exception("trigger %s/%s: the event could not be handled", namespace, name)
            refusal = Refusal(500, "internal", "the event could not be handled; retry")
            return self._refused(name if trigger else "", namespace if trigger else "", refusal)
        finally:
            LATENCY.observe(time.monotonic() - started)

    async def _body(self, request: web.Request) -> bytes | Refusal:
        """The raw body, refused without reading it all when it is too large."""
        too_large = Refusal(
            413, "body_too_large", f"the body is larger than {self.max_body_bytes} bytes (the server's limit)"
        )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return too_large
        chunks, size = [], 0
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.read(BODY_CHUNK):
                size += len(chunk)
                if size > self.max_body_bytes:
                    return too_large  # chunked, no Content-Length: stopped at the limit
                chunks.append(chunk)
        return b"".join(chunks)

    async def _handle(self, trigger: dict[str, Any], request: web.Request, body: bytes) -> web.Response:
        meta = trigger["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        spec = trigger.get("spec") or {}
        pipeline_name = (spec.get("pipelineRef") or {}).get("name", "")
        pipeline = self.pipelines.get((namespace, pipeline_name))
        headers = {k.lower(): v for k, v in request.headers.items()}
        now = now_rfc3339()
        key_material, problem, fresh = await self._signing_key(trigger)
        planned = plan_event(trigger, pipeline, key_material, problem, headers, body, now)
        if isinstance(planned, Refusal) and planned.reason in ("signature", "secret") and not fresh:
            # The key may have been rotated (or the Secret made) since it was
            # read: read it again, at most once a second, before refusing.
            key_material, problem, _ = await self._signing_key(trigger, refresh=True)
            planned = plan_event(trigger, pipeline, key_material, problem, headers, body, now)
        if isinstance(planned, Refusal):
            return self._refused(name, namespace, planned, trigger)
        return await self._start(trigger, pipeline, planned, now)

    async def _start(
        self, trigger: dict[str, Any], pipeline: dict[str, Any] | None, planned: NewRun, now: str
    ) -> web.Response:
        """Create the event's run, within the pipeline's rate; an event whose
        run exists (a redelivery) is answered as a duplicate.
        """
        meta = trigger["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        pipeline_name = planned.body["spec"]["pipelineRef"]["name"]
        window_key = f"{namespace}/{pipeline_name}"
        moment = time.monotonic()
        limit = run_limit(pipeline)
        wait = self.window.wait_needed(window_key, limit, moment)
        if wait > 0:
            if await self._ours(trigger, planned) is True:
                return self._duplicate(name, namespace, planned)
            message = f"pipeline {pipeline_name} allows {limit} runs a minute (maxTriggeredRunsPerMinute)"
            return self._refused(name, namespace, Refusal(429, "rate_limited", message, wait), trigger)
        self.window.record(window_key, moment)
        try:
            await self.client.create(run_path(namespace), planned.body)
        except ApiError as error:
            self.window.forget(window_key, moment)
            return await self._not_created(trigger, planned, error)
        except BaseException:
            self.window.forget(window_key, moment)
            raise
        EVENTS.labels(namespace, name, "accepted", "").inc()
        seen = self.seen.setdefault((namespace, name), Seen())
        seen.last_run, seen.last_event_time, seen.dirty = planned.name, now, True
        if pipeline is not None:
            self._later(self.events.record(pipeline, "Normal", "Triggered", self._triggered(name, planned)))
        return web.json_response({"run": planned.name, "duplicate": False}, status=202)

    async def _not_created(self, trigger: dict[str, Any], planned: NewRun, error: ApiError) -> web.Response:
        meta = trigger["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if error.already_exists:
            if await self._ours(trigger, planned) is not False:
                return self._duplicate(name, namespace, planned)
            taken = (
                f"a run named {planned.name} exists and was not started by this trigger: rename or delete it"
            )
            return self._refused(name, namespace, Refusal(409, "name_taken", taken), trigger)
        log.warning("trigger %s/%s: creating run %s failed: %s", namespace, name, planned.name, error)
        status = 422 if error.permanent else 502
        return self._refused(name, namespace, Refusal(status, "create_failed", error.message), trigger)

    @staticmethod
    def _triggered(trigger: str, planned: NewRun) -> str:
        return f"run {planned.name} started by trigger {trigger} (event {planned.key[:80]})"

    def _duplicate(self, name: str, namespace: str, planned: NewRun) -> web.Response:
        EVENTS.labels(namespace, name, "deduplicated", "").inc()
        return web.json_response({"run": planned.name, "duplicate": True}, status=200)

    def _refused(
        self, label: str, namespace: str, refusal: Refusal, trigger: dict[str, Any] | None = None
    ) -> web.Response:
        EVENTS.labels(namespace, label, "refused", refusal.reason).inc()
        if trigger is not None:
            self._tell_refusal(trigger, refusal)
        headers = (
            {"Retry-After": str(max(1, math.ceil(refusal.retry_after)))} if refusal.retry_after else None
        )
        body = {"error": refusal.reason, "message": refusal.message}
        return web.json_response(body, status=refusal.status, headers=headers)

    def _tell_refusal(self, trigger: dict[str, Any], refusal: Refusal) -> None:
        """A Warning Event on the Trigger, at most once a minute per reason:
        a flood of bad requests must not become a flood of API writes.
        """
        meta = trigger["metadata"]
        key = (meta["namespace"], meta["name"], refusal.reason)
        moment = time.monotonic()
        if moment - self.refusals_told.get(key, -REFUSAL_EVENT_SECONDS) < REFUSAL_EVENT_SECONDS:
            return
        self.refusals_told[key] = moment
        message = f"refused an event ({refusal.status}): {refusal.detail or refusal.message}"
        self._later(self.events.record(trigger, "Warning", "EventRefused", message))

    async def _signing_key(
        self, trigger: Mapping[str, Any], refresh: bool = False
    ) -> tuple[bytes | None, str | None, bool]:
        """The Trigger's key (or why it cannot be read), and whether it was
        read just now. Kept for KEY_SECONDS, so a flood of unsigned requests
        is not also a flood of Secret reads on the API server; read again
        sooner (at most once a second) when a signature does not match.
        """
        namespace = trigger["metadata"]["namespace"]
        try:
            ref = TriggerSpec.model_validate(trigger.get("spec") or {}).secret_ref
        except ValueError:
            return None, "the Trigger is invalid", True
        where = (namespace, ref.name, ref.key)
        moment = time.monotonic()
        held = self.keys.get(where)
        age = moment - held[2] if held is not None else None
        if (
            held is not None
            and age is not None
            and (age < KEY_MIN_SECONDS or (not refresh and age < KEY_SECONDS))
        ):
            return held[0], held[1], False
        key, problem = await self._read_key(namespace, ref.name, ref.key)
        self.keys[where] = (key, problem, moment)
        return key, problem, True

    async def _read_key(self, namespace: str, secret_name: str, key: str) -> tuple[bytes | None, str | None]:
        try:
            secret = await self.client.get_optional(f"/api/v1/namespaces/{namespace}/secrets/{secret_name}")
        except ApiError as error:
            return None, f"the Secret {secret_name} cannot be read: {error.message}"
        if secret is None:
            return None, f"the Secret {secret_name} (spec.secretRef) does not exist"
        encoded = (secret.get("data") or {}).get(key)
        if not encoded:
            return None, f"the Secret {secret_name} has no key {key} (spec.secretRef.key)"
        return normalised_key(base64.b64decode(encoded)), None

    async def _ours(self, trigger: Mapping[str, Any], planned: NewRun) -> bool | None:
        """Whether the run under the event's name is this event's run (started
        by this Trigger for this key): True, False (someone else's, or
        another key's), or None (gone again since).
        """
        meta = trigger["metadata"]
        found = await self.client.get_optional(run_path(meta["namespace"], planned.name))
        if found is None:
            return None
        found_meta = found["metadata"]
        found_labels = found_meta.get("labels") or {}
        wanted = planned.body["metadata"]["labels"]
        return (
            found_labels.get(labels.TRIGGER) == wanted[labels.TRIGGER]
            and found_labels.get(labels.PIPELINE) == wanted[labels.PIPELINE]
            and (found_meta.get("annotations") or {}).get(KEY_DIGEST_ANNOTATION) == key_digest(planned.key)
        )

    def _later(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # --- status ---------------------------------------------------------------------

    async def write_statuses(self) -> None:
        """Every few seconds, write the status of Triggers whose news changed:
        Ready (the signing key can be read, the pipeline exists), where to
        POST, the last run started.
        """
        while True:
            for key, trigger in list(self.triggers.items()):
                seen = self.seen.setdefault(key, Seen())
                if not seen.dirty and time.monotonic() - seen.written_at < STATUS_REFRESH_SECONDS:
                    continue
                try:
                    await self._write_status(trigger, seen)
                    seen.dirty, seen.written_at = False, time.monotonic()
                except Exception as error:  # never end the loop: the next round tries again
                    log.warning("trigger %s/%s: status not written: %s", *key, error)
            await asyncio.sleep(STATUS_SECONDS)

    async def _write_status(self, trigger: dict[str, Any], seen: Seen) -> None:
        meta = trigger["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        status = dict(trigger.get("status") or {})
        key, problem, _ = await self._signing_key(trigger)
        if problem is None and key is not None:
            problem = key_problem(key)
        problem = problem or self._setup_problem(trigger)
        conditions = [Condition.model_validate(c) for c in status.get("conditions") or ()]
        ready = (
            condition("Ready", "False", "NotReady", problem, now_rfc3339())
            if problem
            else condition(
                "Ready",
                "True",
                "Ready",
                f"events POSTed to {self.path(namespace, name)} start runs",
                now_rfc3339(),
            )
        )
        new = {
            "observedGeneration": meta.get("generation"),
            "conditions": [c.to_api() for c in set_condition(conditions, ready)],
            "path": self.path(namespace, name),
        }
        if seen.last_run and (seen.last_event_time or "") > (status.get("lastEventTime") or ""):
            # Only news: another replica may have written a later event.
            new["lastRunName"] = seen.last_run
            new["lastEventTime"] = seen.last_event_time
        if all(status.get(k) == v for k, v in new.items()):
            return
        body = {"status": new}
        await self.client.merge_patch(trigger_path(namespace, name, "status"), body)

    def _setup_problem(self, trigger: Mapping[str, Any]) -> str | None:
        """Why no event could start a run (other than its key), or None."""
        namespace = trigger["metadata"]["namespace"]
        try:
            spec = TriggerSpec.model_validate(trigger.get("spec") or {})
            mapping_problem(spec)
        except (ValueError, MappingError) as error:
            return f"the Trigger is invalid: {error}"
        pipeline = self.pipelines.get((namespace, spec.pipeline_ref.name))
        if pipeline is None:
            return f"pipeline {spec.pipeline_ref.name} (spec.pipelineRef) does not exist"
        mapped = {p.name for p in spec.params or ()}
        for param in (pipeline.get("spec") or {}).get("params") or ():
            if param.get("default") is None and param.get("name") not in mapped:
                return f"pipeline param {param.get('name')} has no default and spec.params does not map it"
        return None

    @staticmethod
    def path(namespace: str, name: str) -> str:
        return f"/v1/namespaces/{namespace}/triggers/{name}"


async def close(server: TriggerServer, tasks: list[asyncio.Task[None]]) -> None:
    for task in [*tasks, *server.background]:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks, *server.background, return_exceptions=True)
    await server.client.close()
