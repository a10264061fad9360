"""Follow one run or one run's pods through watches, as kubectl --watch
does: the current state first, then each change, reconnecting when the
server ends a watch (timeouts, 410 Gone) without losing or repeating one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from kubernetes import watch as _watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from sluice.cli.connection import GROUP, VERSION, Session

_watch_module: Any = cast(Any, _watch)

# How long one watch request lasts before it is renewed (the server may end
# it sooner); short enough that a deadline or a stop request is noticed.
_WATCH_SECONDS = 30
# A watch broken by the API server (a restart) is started again after this.
RETRY_SECONDS = 2.0


class RunDeleted(Exception):
    """The run was deleted while it was being followed."""


def _remaining(deadline: float | None) -> float:
    return _WATCH_SECONDS if deadline is None else min(_WATCH_SECONDS, deadline - time.monotonic())


def follow_run(
    session: Session, namespace: str, name: str, deadline: float | None = None
) -> Iterator[dict[str, Any]]:
    """The run now and after each change, until ``deadline`` (monotonic) passes.

    Raises RunDeleted if it is deleted, ApiException (404) if it never existed.
    """
    current = session.get("pipelineruns", name, namespace)
    yield current
    version = current["metadata"]["resourceVersion"]
    while (timeout := _remaining(deadline)) > 0:
        stream = _watch_module.Watch().stream(
            session.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "pipelineruns",
            field_selector=f"metadata.name={name}",
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=max(int(timeout), 1),
            _request_timeout=int(timeout) + 15,
        )
        try:
            for event in stream:
                obj = event["object"]
                kind = event["type"]
                version = obj["metadata"]["resourceVersion"]
                if kind == "DELETED":
                    raise RunDeleted(f"run {namespace}/{name} was deleted")
                if kind != "BOOKMARK":
                    yield obj
                if deadline is not None and time.monotonic() >= deadline:
                    return
        except (ApiException, HTTPError) as error:
            if not _transient(error):
                raise
            # Our version is too old to resume from (410), or the API server
            # is restarting: start again from now, once it answers.
            current = _current(session, namespace, name, deadline, pause=_status(error) != 410)
            version = current["metadata"]["resourceVersion"]
            yield current


def _status(error: Exception) -> int | None:
    return getattr(error, "status", None) if isinstance(error, ApiException) else None


def _transient(error: Exception) -> bool:
    """A 410, a 429, a 5xx or a broken connection: worth trying again."""
    status = _status(error)
    return status is None or status in (410, 429) or status >= 500


def _current(
    session: Session, namespace: str, name: str, deadline: float | None, pause: bool
) -> dict[str, Any]:
    """The run as it is now, read again until the API server answers (or the deadline)."""
    while True:
        if pause:
            time.sleep(max(min(RETRY_SECONDS, _remaining(deadline)), 0))
        try:
            return session.get("pipelineruns", name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise RunDeleted(f"run {namespace}/{name} was deleted") from error
            if not _transient(error) or _remaining(deadline) <= 0:
                raise
        except HTTPError:
            if _remaining(deadline) <= 0:
                raise
        pause = True


def follow_pods(
    session: Session, namespace: str, selector: str, stop: Callable[[], bool]
) -> Iterator[dict[str, Any]]:
    """Each pod matching ``selector`` now and after each change, until
    ``stop()`` says so (checked at least every few seconds).
    """
    listing = session.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
    page = json.loads(listing.data)
    yield from page.get("items") or ()
    version = page["metadata"]["resourceVersion"]
    while not stop():
        stream = _watch_module.Watch().stream(
            session.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=3,
            _request_timeout=20,
        )
        try:
            for event in stream:
                raw = event["raw_object"]
                version = raw["metadata"]["resourceVersion"]
                if event["type"] in {"ADDED", "MODIFIED"}:
                    yield raw
                if stop():
                    return
        except ApiException as error:
            if error.status != 410:
                raise
            listing = session.core.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False
            )
            page = json.loads(listing.data)
            yield from page.get("items") or ()
            version = page["metadata"]["resourceVersion"]
