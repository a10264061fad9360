"""Event triggers: HMAC-signed HTTP events start runs, exactly once per event.

The triggers server runs as the chart installs it (its own ServiceAccount and
RBAC, never admin credentials) beside the operator, so an accepted event is
followed to its run's pods and outcome.
"""

from __future__ import annotations

import base64
import json
import pathlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sluice.triggers.plan import trigger_run_name
from sluice.triggers.signature import sign
from tests.builders import pipeline, task
from tests.builders import run as run_of_pipeline
from tests.integration.conftest import Kube, OperatorProcess, free_port, wait_for
from tests.integration.installed import Installation, install_triggers_rbac
from tests.integration.servers import ChildServer
from tests.integration.test_metrics import scrape

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]

KEY = b"a-signing-key-of-this-test"
NOTIFICATION = {
    "EventName": "s3:ObjectCreated:Put",
    "Key": "landing/orders-2026-11-24.csv",
    "Records": [
        {
            "eventTime": "2026-11-24T03:00:00.000Z",
            "s3": {
                "bucket": {"name": "landing"},
                "object": {"key": "orders-2026-11-24.csv", "size": 1048576, "eTag": "d41d8cd98f00b204"},
            },
        }
    ],
}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class TriggersProcess(ChildServer):
    """The triggers server as a child process, with the chart's identity."""

    def __init__(self, installed: Installation, log_dir: pathlib.Path) -> None:
        self.metrics_port = free_port()
        port = free_port()
        super().__init__(
            "sluice.triggers",
            installed,
            log_dir / "triggers.log",
            port,
            SLUICE_TRIGGERS_PORT=str(port),
            SLUICE_METRICS_PORT=str(self.metrics_port),
            SLUICE_TRIGGERS_MAX_BODY_BYTES=str(1024 * 1024),
        )

    def post(
        self,
        namespace: str,
        trigger: str,
        body: bytes | Iterator[bytes],
        headers: dict[str, str] | None = None,
    ) -> Answer:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/namespaces/{namespace}/triggers/{trigger}",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, json.loads(response.read()), dict(response.headers))
        except urllib.error.HTTPError as error:
            return Answer(error.code, json.loads(error.read()), dict(error.headers))

    def signed(self, namespace: str, trigger: str, event: Any, **headers: str) -> Answer:
        body = json.dumps(event).encode()
        return self.post(namespace, trigger, body, {"X-Sluice-Signature-256": sign(KEY, body), **headers})

    def metric(self, result: str, trigger: str, namespace: str, reason: str = "") -> float:
        name = (  # the exposition sorts the labels
            f'sluice_trigger_events_total{{namespace="{namespace}",reason="{reason}",'
            f'result="{result}",trigger="{trigger}"}}'
        )
        return scrape(self.metrics_port).get(name, 0.0)


@pytest.fixture(scope="module")
def triggers_installation(
    kube: Kube, helm: str, installation: Installation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    installed = install_triggers_rbac(
        kube, helm, installation.release, installation.namespace, tmp_path_factory.mktemp("triggers")
    )
    yield installed
    installed.uninstall(kube)


@pytest.fixture(scope="module")
def server(triggers_installation: Installation, operator_logs: pathlib.Path) -> Iterator[TriggersProcess]:
    process = TriggersProcess(triggers_installation, operator_logs)
    yield process
    process.stop()


def setup(kube: Kube, namespace: str, duration: str = "0s", **pipeline_spec: Any) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "landing-hook"},
        "data": {"secret": base64.b64encode(KEY).decode()},
    }
    ingest = pipeline(
        "ingest",
        [
            task(
                "load",
                duration=duration,
                args=["--bucket=$(params.bucket)", "--object=$(params.object)", "--size=$(params.size)"],
            )
        ],
        params=[{"name": "bucket"}, {"name": "object"}, {"name": "size", "default": "0"}],
        **pipeline_spec,
    )
    trigger = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": "landing"},
        "spec": {
            "pipelineRef": {"name": "ingest"},
            "secretRef": {"name": "landing-hook"},
            "params": [
                {"name": "bucket", "value": "$(body.Records[0].s3.bucket.name)"},
                {
                    "name": "object",
                    "value": "s3://$(body.Records[0].s3.bucket.name)/$(body.Records[0].s3.object.key)",
                },
                {"name": "size", "value": "$(body.Records[0].s3.object.size)"},
            ],
            "idempotencyKey": "$(body.Records[0].s3.object.eTag)",
        },
    }
    kube.apply(namespace, secret, ingest, trigger)


def ready(server: TriggersProcess, namespace: str) -> None:
    """Until the server's watches have the Trigger and its Pipeline: a signed
    event it cannot map is refused (422) once both are known, and starts nothing.
    """
    wait_for(
        "the server to know the trigger and its pipeline",
        lambda: server.signed(namespace, "landing", {"probe": True}).status == 422,
    )


def runs_of(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.custom.list_namespaced_custom_object(
        "sluice.dev", "v1alpha1", namespace, "pipelineruns", label_selector="sluice.dev/trigger=landing"
    )["items"]
    return items


def run_of(name: str, params: list[dict[str, str]]) -> dict[str, Any]:
    return run_of_pipeline(name, "ingest", params=params)


def with_tag(tag: str) -> dict[str, Any]:
    event = json.loads(json.dumps(NOTIFICATION))
    event["Records"][0]["s3"]["object"]["eTag"] = tag
    return event


def test_a_signed_event_starts_one_run_with_params_from_its_body_and_a_replay_starts_none(
    kube: Kube, namespace: str, operator: OperatorProcess, server: TriggersProcess
) -> None:
    setup(kube, namespace)
    ready(server, namespace)
    before = server.metric("deduplicated", "landing", namespace)
    first = server.signed(namespace, "landing", NOTIFICATION)
    assert first.status == 202 and first.body["duplicate"] is False
    name = first.body["run"]
    done = kube.wait_run(namespace, name)
    assert done["status"]["phase"] == "Succeeded"
    params = {p["name"]: p["value"] for p in done["spec"]["params"]}
    assert params == {"bucket": "landing", "object": "s3://landing/orders-2026-11-24.csv", "size": "1048576"}
    [pod] = kube.pods(namespace, name)
    assert pod.spec.containers[0].args == [
        "--bucket=landing",
        "--object=s3://landing/orders-2026-11-24.csv",
        "--size=1048576",
    ]

    # Redelivered (the same eTag, even with another body): the same run, nothing new.
    again = server.signed(namespace, "landing", {**NOTIFICATION, "redelivered": True})
    assert (again.status, again.body) == (200, {"run": name, "duplicate": True})
    assert [r["metadata"]["name"] for r in runs_of(kube, namespace)] == [name]
    assert server.metric("deduplicated", "landing", namespace) == before + 1

    events = wait_for(
        "a Triggered Event on the pipeline",
        lambda: (
            kube.core.list_namespaced_event(
                namespace,
                field_selector="involvedObject.kind=Pipeline,involvedObject.name=ingest,reason=Triggered",
            ).items
            or None
        ),
    )
    assert name in events[0].message

    def status() -> dict[str, Any] | None:
        obj = kube.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "triggers", "landing"
        )
        found = obj.get("status") or {}
        return found if found.get("lastRunName") == name else None

    shown = wait_for("the trigger's status", status, timeout=30)
    assert shown["path"] == f"/v1/namespaces/{namespace}/triggers/landing"
    assert [(c["type"], c["status"]) for c in shown["conditions"]] == [("Ready", "True")]


def test_unsigned_and_badly_signed_events_are_refused_counted_and_start_nothing(
    kube: Kube, namespace: str, operator: OperatorProcess, server: TriggersProcess
) -> None:
    setup(kube, namespace)
    ready(server, namespace)
    before = server.metric("refused", "landing", namespace, "signature")
    body = json.dumps(with_tag("bad")).encode()
    unsigned = server.post(namespace, "landing", body)
    assert unsigned.status == 401 and "not signed" in unsigned.body["message"]
    forged = server.post(namespace, "landing", body, {"X-Sluice-Signature-256": sign(b"another key", body)})
    assert forged.status == 401 and "does not match" in forged.body["message"]
    tampered = server.post(namespace, "landing", body + b" ", {"X-Sluice-Signature-256": sign(KEY, body)})
    assert tampered.status == 401
    assert server.metric("refused", "landing", namespace, "signature") == before + 3
    assert runs_of(kube, namespace) == []
    wait_for(
        "an EventRefused Event on the trigger for the signatures",
        lambda: (
            [
                e
                for e in kube.core.list_namespaced_event(
                    namespace,
                    field_selector="involvedObject.kind=Trigger,involvedObject.name=landing,reason=EventRefused",
                ).items
                if "(401)" in e.message
            ]
            or None
        ),
    )
    unknown = server.signed(namespace, "nobody", NOTIFICATION)
    assert unknown.status == 404


def test_malformed_json_an_unmappable_event_and_a_10_mib_body_get_clear_errors_and_service_goes_on(
    kube: Kube, namespace: str, operator: OperatorProcess, server: TriggersProcess
) -> None:
    setup(kube, namespace)
    ready(server, namespace)
    broken = b'{"Records": [ {"s3": '
    answer = server.post(namespace, "landing", broken, {"X-Sluice-Signature-256": sign(KEY, broken)})
    assert answer.status == 400
    assert answer.body["error"] == "malformed" and "line 1 column" in answer.body["message"]

    unmappable = server.signed(namespace, "landing", {"Records": []})
    assert unmappable.status == 422
    assert "body.Records is a list of 0, it has no [0]" in unmappable.body["message"]

    huge = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    too_large = server.post(namespace, "landing", huge, {"X-Sluice-Signature-256": sign(KEY, huge)})
    assert too_large.status == 413 and "1048576 bytes" in too_large.body["message"]
    # Sent in chunks with no Content-Length: refused once the limit is passed.
    chunked = server.post(
        namespace, "landing", iter([b" " * 65536] * 160), {"X-Sluice-Signature-256": sign(KEY, huge)}
    )
    assert chunked.status == 413
    # A large body within the limit is read whole: its signature holds (the mapping then refuses it).
    large = json.dumps({"padding": "x" * 900_000}).encode()
    whole = server.post(namespace, "landing", large, {"X-Sluice-Signature-256": sign(KEY, large)})
    assert (whole.status, whole.body["error"]) == (422, "mapping")
    assert runs_of(kube, namespace) == []

    fine = server.signed(namespace, "landing", with_tag("after-the-flood"))
    assert fine.status == 202
    assert kube.wait_run(namespace, fine.body["run"])["status"]["phase"] == "Succeeded"


def test_the_pipelines_rate_limit_answers_429_and_max_concurrent_runs_holds_triggered_runs(
    kube: Kube, namespace: str, operator: OperatorProcess, server: TriggersProcess
) -> None:
    setup(kube, namespace, duration="3s", maxTriggeredRunsPerMinute=2, maxConcurrentRuns=1)
    ready(server, namespace)
    first = server.signed(namespace, "landing", with_tag("one"))
    second = server.signed(namespace, "landing", with_tag("two"))
    assert (first.status, second.status) == (202, 202)
    third = server.signed(namespace, "landing", with_tag("three"))
    assert third.status == 429 and third.body["error"] == "rate_limited"
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    # A redelivery of an accepted event is still told it is a duplicate.
    replay = server.signed(namespace, "landing", with_tag("one"))
    assert (replay.status, replay.body["duplicate"]) == (200, True)

    def one_waiting() -> dict[str, Any] | None:
        runs = {r["metadata"]["name"]: r.get("status") or {} for r in runs_of(kube, namespace)}
        phases = sorted(s.get("phase") or "" for s in runs.values())
        return runs if phases == ["Pending", "Running"] else None

    waiting = wait_for("one triggered run running, the other held", one_waiting)
    held = next(s for s in waiting.values() if s["phase"] == "Pending")
    assert any(c["reason"] == "WaitingForConcurrency" for c in held["conditions"])
    for name in (first.body["run"], second.body["run"]):
        assert kube.wait_run(namespace, name)["status"]["phase"] == "Succeeded"


def test_a_run_of_that_name_the_trigger_did_not_start_is_not_taken_for_the_events_run(
    kube: Kube, namespace: str, operator: OperatorProcess, server: TriggersProcess
) -> None:
    setup(kube, namespace)
    ready(server, namespace)
    squatter = trigger_run_name("landing", "squat")
    params = [{"name": "bucket", "value": "b"}, {"name": "object", "value": "o"}]
    kube.apply(namespace, run_of(squatter, params))
    answer = server.signed(namespace, "landing", with_tag("squat"))
    assert answer.status == 409 and answer.body["error"] == "name_taken"
    assert squatter in answer.body["message"]
