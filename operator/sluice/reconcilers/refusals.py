"""Show an API refusal that retrying cannot fix on the object whose pass hit it.

The decision (which condition, which Event) is ``engine.blocked``'s; this
module only reads the object's conditions, writes them back and posts the
Event. Best effort by design: the refusal may well cover the status write or
the Event itself, and then the operator log is all that is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sluice.api.v1alpha1 import Condition
from sluice.engine.blocked import Refusal, blocked_conditions, blocked_event, unblocked_conditions
from sluice.events import EventRecorder
from sluice.kube import ApiError, KubeClient
from sluice.reconcilers.keys import BackfillKey, OwnWrites, PipelineKey

log = logging.getLogger(__name__)


def refusal_of(error: ApiError, namespace: str) -> Refusal:
    return Refusal(error.status, error.verb, error.resource, namespace, error.message)


def _by_type(conditions: list[Condition]) -> dict[str, dict[str, Any]]:
    return {c.type: c.model_dump(exclude={"last_transition_time"}) for c in conditions}


async def show_refusal(
    client: KubeClient,
    events: EventRecorder,
    obj: dict[str, Any],
    status_path: str,
    refusal: Refusal,
    now: str,
) -> dict[str, Any] | None:
    """Write the Blocked condition and post the Event, once per distinct
    refusal (a pass retried with backoff that meets the same one again
    changes nothing and posts nothing). Returns the object as written, if
    a write happened.
    """
    raw = (obj.get("status") or {}).get("conditions") or []
    current = [Condition.model_validate(c) for c in raw]
    wanted = blocked_conditions(current, refusal, now)
    if _by_type(wanted) == _by_type(current):
        return None
    written: dict[str, Any] | None = None
    try:
        body = {"status": {"conditions": [c.to_api() for c in wanted]}}
        written = await client.merge_patch(status_path, body)
    except ApiError as error:
        log.warning("could not show %s on %s: %s", refusal.reason, obj["metadata"]["name"], error)
    await events.announce(obj, blocked_event(refusal))
    return written


async def show_refusal_on(
    client: KubeClient,
    events: EventRecorder,
    writes: OwnWrites,
    key: PipelineKey | BackfillKey,
    path: Callable[..., str],
    error: ApiError,
    now: str,
) -> None:
    """Read the object a pass was refused for (``path(namespace, name[,
    subresource])`` addresses it), show the refusal on it, and note the
    write as this operator's own, so it causes no pass of its own.
    """
    obj = await client.get_optional(path(key.namespace, key.name))
    if obj is None:
        return
    refusal = refusal_of(error, key.namespace)
    written = await show_refusal(client, events, obj, path(key.namespace, key.name, "status"), refusal, now)
    if written is not None:
        writes.note(key, written)


async def clear_blocked(
    client: KubeClient, obj: dict[str, Any], status_path: str, now: str
) -> dict[str, Any] | None:
    """After a pass that did everything it needed (its last call included),
    turn a Blocked condition False; nothing to write when there is none.
    Returns the object as written, if a write happened.
    """
    raw = (obj.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Blocked" and c.get("status") == "True" for c in raw):
        return None
    cleared = unblocked_conditions([Condition.model_validate(c) for c in raw], now)
    assert cleared is not None
    written: dict[str, Any] = await client.merge_patch(
        status_path, {"status": {"conditions": [c.to_api() for c in cleared]}}
    )
    return written
