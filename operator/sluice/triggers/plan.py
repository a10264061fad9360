"""What one event does (pure): refuse it, or create this run.

Everything the answer depends on is an argument, so every refusal and the
run's exact shape are unit-tested without a server or a cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sluice.api import labels
from sluice.api.v1alpha1 import PipelineSpec, TriggerSpec
from sluice.engine.naming import MAX_NAME, label_value, short_hash
from sluice.engine.run_body import pipeline_owned_run
from sluice.triggers.expressions import MappingError, check_template, headers_named, render
from sluice.triggers.signature import key_problem, signature_problem, token_problem

KEY_ANNOTATION = "sluice.dev/trigger-key"
KEY_DIGEST_ANNOTATION = "sluice.dev/trigger-key-sha256"
EVENT_TIME_ANNOTATION = "sluice.dev/event-time"
NAME_HASH = 16  # hex digits: 64 bits of the key in the run's name


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # a metric label and the answer's "error"
    message: str  # what the sender is told
    retry_after: float | None = None
    # What the Trigger's Event says, when the sender may not be told (it has
    # not authenticated yet): which Secret, why the Trigger is invalid.
    detail: str | None = None


@dataclass(frozen=True)
class NewRun:
    name: str
    key: str
    body: dict[str, Any]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def trigger_run_name(trigger: str, key: str) -> str:
    """``<trigger>-<hash>``: one name per event key of one Trigger (by name,
    so a Trigger deleted and applied again still knows its past events): a
    redelivered event meets the run it started (AlreadyExists). The run
    carries the key's full digest, so a name shared by two keys (or a run
    someone else made) is told apart from a redelivery.
    """
    digest = hashlib.sha256(f"{trigger}\x00{key}".encode()).hexdigest()[:NAME_HASH]
    if len(trigger) + 1 + NAME_HASH <= MAX_NAME:
        return f"{trigger}-{digest}"
    room = MAX_NAME - NAME_HASH - len(short_hash(trigger)) - 2
    return f"{trigger[:room].rstrip('-.')}-{short_hash(trigger)}-{digest}"


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def plan_event(
    trigger: Mapping[str, Any],
    pipeline: Mapping[str, Any] | None,
    key_material: bytes | None,
    secret_problem: str | None,
    headers: Mapping[str, str],
    body: bytes,
    now: str,
) -> NewRun | Refusal:
    """Refuse the event, or the run it starts. ``headers`` keyed in lower case;
    ``key_material`` is the HMAC key (None with ``secret_problem`` saying why).
    Checked in this order, so an unsigned sender learns nothing about the
    pipeline or the mapping.
    """
    meta = trigger["metadata"]
    try:
        spec = _authenticated(trigger, key_material, secret_problem, headers, body)
        event = _parsed(body)
        if pipeline is None:
            # Retryable: with GitOps the Pipeline may simply not be applied yet.
            name = spec.pipeline_ref.name
            message = f"pipeline {name} (spec.pipelineRef) does not exist in {meta['namespace']} (yet)"
            raise _Refused(Refusal(503, "pipeline", message, retry_after=10))
        params, key = _mapped(spec, pipeline, event, headers, body)
    except _Refused as refused:
        return refused.refusal
    name = trigger_run_name(meta["name"], key)
    annotations = {
        KEY_ANNOTATION: key[:1024],
        KEY_DIGEST_ANNOTATION: key_digest(key),
        EVENT_TIME_ANNOTATION: now,
    }
    # Owned by the Pipeline, as its scheduled runs are: deleting or replacing
    # a webhook's Trigger does not stop the loads it started.
    run = pipeline_owned_run(
        pipeline["metadata"],
        name,
        {"params": params} if params else {},
        {labels.TRIGGER: label_value(meta["name"])},
        annotations,
    )
    return NewRun(name, key, run)


def _authenticated(
    trigger: Mapping[str, Any],
    key_material: bytes | None,
    secret_problem: str | None,
    headers: Mapping[str, str],
    body: bytes,
) -> TriggerSpec:
    # Before authentication the sender learns only that the trigger cannot
    # take events now; the details go to the Trigger's Event and status.
    not_ready = f"trigger {trigger['metadata']['name']} cannot take events now"
    try:
        spec = TriggerSpec.model_validate(trigger.get("spec") or {})
    except ValidationError as error:
        raise _Refused(
            Refusal(503, "invalid_trigger", not_ready, 30, f"the Trigger is invalid: {error}")
        ) from error
    if spec.suspend:
        raise _Refused(Refusal(503, "suspended", not_ready, 60, "spec.suspend is true"))
    problem = secret_problem if key_material is None else key_problem(key_material)
    if key_material is None or problem is not None:
        raise _Refused(Refusal(503, "secret", not_ready, 10, problem or "the signing key cannot be read"))
    if spec.authentication == "BearerToken":
        problem = token_problem(key_material, headers.get("authorization"))
    else:
        header = spec.signature_header.lower()
        problem = signature_problem(key_material, body, headers.get(header), spec.signature_header)
    if problem is not None:
        raise _Refused(Refusal(401, "signature", problem))
    return spec


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        message = f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        raise _Refused(Refusal(400, "malformed", message)) from error
    except UnicodeDecodeError as error:
        raise _Refused(Refusal(400, "malformed", "the body is not JSON text (UTF-8, -16 or -32)")) from error
    except RecursionError as error:
        raise _Refused(Refusal(400, "malformed", "the body's JSON is nested too deeply")) from error
    except ValueError as error:  # e.g. an integer of thousands of digits
        raise _Refused(Refusal(400, "malformed", f"the body's JSON cannot be read: {error}")) from error


def _mapped(
    spec: TriggerSpec, pipeline: Mapping[str, Any], event: Any, headers: Mapping[str, str], body: bytes
) -> tuple[list[dict[str, str]], str]:
    """The run's params and the event's idempotency key."""
    declared = _declared_params(pipeline)
    params = []
    try:
        mapping_problem(spec)
        for param in spec.params or ():
            if declared is not None and param.name not in declared:
                message = f"param {param.name} is not declared by pipeline {spec.pipeline_ref.name}"
                raise _Refused(Refusal(422, "mapping", message))
            params.append({"name": param.name, "value": render(param.value, event, headers)})
        key = render(spec.idempotency_key, event, headers) if spec.idempotency_key else None
    except MappingError as error:
        raise _Refused(Refusal(422, "mapping", str(error))) from error
    if key is None:
        key = "sha256:" + hashlib.sha256(body).hexdigest()
    if not key:
        raise _Refused(Refusal(422, "mapping", "the idempotency key is empty for this event"))
    return params, key


# Headers a template may never copy into a run: credentials, and the signature.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def mapping_problem(spec: TriggerSpec) -> None:
    """Raise MappingError for templates no event could satisfy, or that
    would copy a credential into the run.
    """
    refused = SECRET_HEADERS | {spec.signature_header.lower()}
    for template in [*(p.value for p in spec.params or ()), spec.idempotency_key or ""]:
        check_template(template)
        copied = sorted(headers_named(template) & refused)
        if copied:
            raise MappingError(f"$(header.{copied[0]}) carries a credential: it is never copied into a run")


def _declared_params(pipeline: Mapping[str, Any]) -> set[str] | None:
    try:
        spec = PipelineSpec.model_validate(pipeline.get("spec") or {})
    except ValidationError:
        return None  # the operator reports an invalid pipeline on the run
    return {p.name for p in spec.params or ()}


def run_limit(pipeline: Mapping[str, Any] | None) -> int | None:
    value = ((pipeline or {}).get("spec") or {}).get("maxTriggeredRunsPerMinute")
    return int(value) if isinstance(value, int) else None
