"""The validating webhook's answer to an AdmissionReview (pure).

Refuses at ``kubectl apply`` what would otherwise be accepted and then only
shown as ``Valid=False`` on a Pipeline or a failed run, with the same reason
and message (see ``engine.validation``): GitOps tools (Argo CD, Flux) show a
sync as failed only when the API server refuses the object.

What is looked at: a Pipeline on create, and on an update that changes its
spec (so metadata edits, finalizers and labels, of a Pipeline made invalid
before the webhook existed still pass); a PipelineRun with an inline
``pipelineSpec`` on create. Anything else is allowed: a webhook that refuses
what it was not asked about would block the cluster's own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.engine.validation import Problem, inline_run_problem, pipeline_problem

# The webhook paths the chart's ValidatingWebhookConfiguration calls.
PIPELINES = "pipelines"
PIPELINE_RUNS = "pipelineruns"


def _problem(webhook: str, request: Mapping[str, Any]) -> Problem | None:
    operation = request.get("operation")
    obj = request.get("object") or {}
    old = request.get("oldObject") or {}
    spec = obj.get("spec") or {}
    resource = (request.get("resource") or {}).get("resource")
    spec_changed = operation == "UPDATE" and spec != (old.get("spec") or {})
    if webhook == PIPELINES == resource and (operation == "CREATE" or spec_changed):
        return pipeline_problem(spec)
    if webhook == PIPELINE_RUNS == resource and operation == "CREATE":
        return inline_run_problem(spec)
    return None


def review(admission_review: Mapping[str, Any], webhook: str) -> dict[str, Any]:
    """The AdmissionReview (admission.k8s.io/v1) response for ``webhook``."""
    request = admission_review.get("request") or {}
    problem = _problem(webhook, request)
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": problem is None}
    if problem is not None:
        kind = (request.get("kind") or {}).get("kind", "object")
        response["status"] = {
            "code": 422,
            "reason": "Invalid",
            # Cut where the Valid condition cuts it: the same words in both places.
            "message": f"{kind} is invalid: {problem.reason}: {problem.message[:1024]}",
        }
    return {
        "apiVersion": admission_review.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }
