"""The webhook's answers: refusals with the Valid condition's words, and
nothing refused that it was not asked to judge."""

from __future__ import annotations

from typing import Any

from sluice.engine.admission_review import review
from sluice.engine.pipeline_status import pipeline_status

T0 = "2026-11-24T10:00:00Z"
CYCLE = {
    "tasks": [
        {"name": "a", "image": "x", "dependsOn": ["b"]},
        {"name": "b", "image": "x", "dependsOn": ["a"]},
    ]
}
GOOD = {"tasks": [{"name": "a", "image": "x"}]}


def request(
    resource: str, operation: str, spec: dict[str, Any], old: dict[str, Any] | None = None
) -> dict[str, Any]:
    kind = {"pipelines": "Pipeline", "pipelineruns": "PipelineRun"}[resource]
    body: dict[str, Any] = {
        "uid": "u-1",
        "kind": {"group": "sluice.dev", "version": "v1alpha1", "kind": kind},
        "resource": {"group": "sluice.dev", "version": "v1alpha1", "resource": resource},
        "operation": operation,
        "object": {"metadata": {"name": "p", "generation": 1}, "spec": spec},
    }
    if old is not None:
        body["oldObject"] = {"metadata": {"name": "p"}, "spec": old}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


def test_a_cycle_is_refused_with_the_message_of_the_valid_condition() -> None:
    answer = review(request("pipelines", "CREATE", CYCLE), "pipelines")
    assert answer["response"]["uid"] == "u-1" and answer["response"]["allowed"] is False
    status = pipeline_status({"metadata": {"generation": 1}, "spec": CYCLE}, T0)
    assert status is not None
    valid = next(c for c in status.conditions or () if c.type == "Valid")
    assert answer["response"]["status"] == {
        "code": 422,
        "reason": "Invalid",
        "message": f"Pipeline is invalid: {valid.reason}: {valid.message}",
    }


def test_updates_are_judged_only_when_the_spec_changes() -> None:
    # An invalid Pipeline stored before the webhook existed can still be labelled or finalized.
    assert review(request("pipelines", "UPDATE", CYCLE, old=CYCLE), "pipelines")["response"]["allowed"]
    assert not review(request("pipelines", "UPDATE", CYCLE, old=GOOD), "pipelines")["response"]["allowed"]
    assert review(request("pipelines", "UPDATE", GOOD, old=CYCLE), "pipelines")["response"]["allowed"]


def test_runs_are_judged_only_for_an_inline_pipeline_and_its_params() -> None:
    inline = {"pipelineSpec": CYCLE}
    refused = review(request("pipelineruns", "CREATE", inline), "pipelineruns")["response"]
    assert not refused["allowed"] and "PipelineRun is invalid: CycleDetected" in refused["status"]["message"]
    params = {"pipelineSpec": GOOD, "params": [{"name": "day", "value": "1"}]}
    refused = review(request("pipelineruns", "CREATE", params), "pipelineruns")["response"]
    assert not refused["allowed"] and "InvalidParams" in refused["status"]["message"]
    by_reference = {"pipelineRef": {"name": "missing-yet"}, "params": [{"name": "day", "value": "1"}]}
    assert review(request("pipelineruns", "CREATE", by_reference), "pipelineruns")["response"]["allowed"]


def test_what_it_was_not_asked_about_is_allowed() -> None:
    # a path and a resource that do not match (a misconfigured webhook must not block)
    assert review(request("pipelineruns", "CREATE", {"pipelineSpec": CYCLE}), "pipelines")["response"][
        "allowed"
    ]
    assert review(request("pipelines", "DELETE", CYCLE), "pipelines")["response"]["allowed"]
    assert review({"request": {"uid": "x"}}, "pipelines")["response"] == {"uid": "x", "allowed": True}
