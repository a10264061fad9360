"""One event's outcome: the refusal, or the exact run it starts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.triggers.plan import NewRun, Refusal, key_digest, plan_event, trigger_run_name
from sluice.triggers.signature import sign

KEY = b"a-key-of-at-least-16-bytes"
NOW = "2026-11-26T10:00:00Z"


def trigger(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "landing", "namespace": "etl", "uid": "t-uid"},
        "spec": {
            "pipelineRef": {"name": "ingest"},
            "secretRef": {"name": "hook"},
            "params": [{"name": "object", "value": "$(body.key)"}],
            **spec,
        },
    }


PIPELINE = {
    "metadata": {"name": "ingest", "namespace": "etl", "uid": "p-uid"},
    "spec": {"tasks": [{"name": "a", "image": "busybox"}], "params": [{"name": "object"}]},
}


def plan(body: bytes, signed: bool = True, **spec: Any) -> NewRun | Refusal:
    headers = {"x-sluice-signature-256": sign(KEY, body)} if signed else {}
    return plan_event(trigger(**spec), PIPELINE, KEY, None, headers, body, NOW)


def test_a_signed_event_gives_a_run_owned_by_the_trigger_with_mapped_params() -> None:
    result = plan(b'{"key": "a.csv"}')
    assert isinstance(result, NewRun)
    meta = result.body["metadata"]
    assert meta["labels"] == {"sluice.dev/pipeline": "ingest", "sluice.dev/trigger": "landing"}
    # Owned by the Pipeline: deleting the Trigger does not stop the runs it started.
    assert meta["ownerReferences"][0]["kind"] == "Pipeline" and meta["ownerReferences"][0]["uid"] == "p-uid"
    assert meta["annotations"]["sluice.dev/trigger-key-sha256"] == key_digest(result.key)
    assert result.body["spec"] == {
        "pipelineRef": {"name": "ingest"},
        "params": [{"name": "object", "value": "a.csv"}],
    }
    assert result.key.startswith("sha256:")


def test_the_same_event_gives_the_same_run_name_and_another_event_another() -> None:
    one, same, other = plan(b'{"key": "a"}'), plan(b'{"key": "a"}'), plan(b'{"key": "b"}')
    assert isinstance(one, NewRun) and isinstance(same, NewRun) and isinstance(other, NewRun)
    assert one.name == same.name != other.name
    keyed = plan(b'{"key": "a", "id": "e1"}', idempotencyKey="$(body.id)")
    rekeyed = plan(b'{"key": "changed", "id": "e1"}', idempotencyKey="$(body.id)")
    assert isinstance(keyed, NewRun) and isinstance(rekeyed, NewRun) and keyed.name == rekeyed.name


def test_run_names_are_valid_bounded_and_kept_across_a_trigger_applied_again() -> None:
    name = trigger_run_name("t" * 80, "key")
    assert len(name) <= 63 and name != trigger_run_name("t" * 80 + "x", "key")
    assert trigger_run_name("landing", "k") == trigger_run_name("landing", "k")
    assert trigger_run_name("landing", "k") != trigger_run_name("landing", "k2")
    assert len(trigger_run_name("landing", "k")) == len("landing-") + 16


@pytest.mark.parametrize(
    ("body", "signed", "spec", "status", "reason"),
    [
        (b'{"key": "a"}', False, {}, 401, "signature"),
        (b'{"key": ', True, {}, 400, "malformed"),
        (b"\xff\xfe", True, {}, 400, "malformed"),
        (b'{"nokey": 1}', True, {}, 422, "mapping"),
        (b'{"key": "a"}', True, {"suspend": True}, 503, "suspended"),
        (b'{"key": "a"}', True, {"params": [{"name": "undeclared", "value": "x"}]}, 422, "mapping"),
        (b'{"key": "a"}', True, {"idempotencyKey": "$(body.missing)"}, 422, "mapping"),
    ],
)
def test_refusals_say_why(body: bytes, signed: bool, spec: dict[str, Any], status: int, reason: str) -> None:
    result = plan(body, signed, **spec)
    assert isinstance(result, Refusal) and (result.status, result.reason) == (status, reason)


def test_a_missing_pipeline_is_worth_retrying() -> None:
    body = b'{"key": "a"}'
    headers = {"x-sluice-signature-256": sign(KEY, body)}
    result = plan_event(trigger(), None, KEY, None, headers, body, NOW)
    assert isinstance(result, Refusal) and (result.status, result.reason) == (503, "pipeline")
    assert result.retry_after


def test_an_unsigned_sender_learns_nothing_of_the_pipeline_or_mapping() -> None:
    headers: dict[str, str] = {}
    missing_pipeline = plan_event(trigger(), None, KEY, None, headers, json.dumps({}).encode(), NOW)
    assert isinstance(missing_pipeline, Refusal) and missing_pipeline.status == 401


def test_an_unreadable_or_short_key_refuses_without_telling_the_sender_which_secret() -> None:
    result = plan_event(trigger(), PIPELINE, None, "the Secret hook does not exist", {}, b"{}", NOW)
    assert isinstance(result, Refusal) and result.status == 503
    assert "hook" not in result.message and result.detail == "the Secret hook does not exist"
    short = plan_event(trigger(), PIPELINE, b"short", None, {}, b"{}", NOW)
    assert isinstance(short, Refusal) and short.status == 503 and "16" in (short.detail or "")
    invalid = plan_event(trigger(authentication="Hmac"), PIPELINE, KEY, None, {}, b"{}", NOW)
    assert isinstance(invalid, Refusal) and invalid.status == 503 and "Hmac" not in invalid.message


def test_a_credential_header_is_never_copied_into_a_run() -> None:
    body = b'{"key": "a"}'
    headers = {"x-sluice-signature-256": sign(KEY, body), "authorization": "Bearer x", "cookie": "c"}
    for template in ("$(header.Authorization)", "$(header.cookie)", "$(header.X-Sluice-Signature-256)"):
        spec = trigger(params=[{"name": "object", "value": template}])
        result = plan_event(spec, PIPELINE, KEY, None, headers, body, NOW)
        assert isinstance(result, Refusal) and result.reason == "mapping" and "credential" in result.message


def test_json_too_deep_or_too_large_to_read_is_a_clear_400() -> None:
    for body in (b"[" * 50000 + b"]" * 50000, b'{"key": ' + b"9" * 5000 + b"}"):
        result = plan(body)
        assert isinstance(result, Refusal) and (result.status, result.reason) == (400, "malformed")


def test_a_bearer_token_trigger_accepts_only_its_key() -> None:
    body = b'{"key": "a.csv"}'
    token = KEY.decode()
    cases = (
        (f"Bearer {token}", True),
        (f"Bearer {token.upper()}", False),
        (f"Basic {token}", False),
        (None, False),
    )
    for authorization, accepted in cases:
        headers = {"authorization": authorization} if authorization else {}
        result = plan_event(trigger(authentication="BearerToken"), PIPELINE, KEY, None, headers, body, NOW)
        assert isinstance(result, NewRun) is accepted, authorization
    signed_only = {"x-sluice-signature-256": sign(KEY, body)}
    result = plan_event(trigger(authentication="BearerToken"), PIPELINE, KEY, None, signed_only, body, NOW)
    assert isinstance(result, Refusal) and result.status == 401
