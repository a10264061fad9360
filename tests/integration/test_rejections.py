"""A run whose own status the API server refuses ends with the reason,
instead of retrying the write forever while its pods run on.

The refusal comes from a ValidatingAdmissionPolicy (as a site policy or a
webhook would refuse it): it denies any status of labelled runs that records
a succeeded task, so the run's first task succeeds, its second starts, and
then the write that records them is refused.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml

from tests.builders import pipeline, run, succeeded_condition, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration
LABEL = "test.sluice.dev/reject-status"
DENY_MESSAGE = "site policy: this run may not record a succeeded task"


@contextlib.contextmanager
def admission_policy(
    kube: Kube, namespace: str, resource: str, operations: list[str], expression: str, message: str
) -> Iterator[None]:
    """A ValidatingAdmissionPolicy on ``resource`` of sluice.dev, bound to ``namespace``."""
    name = f"sluice-test-{uuid.uuid4().hex[:6]}"
    rule = {
        "apiGroups": ["sluice.dev"],
        "apiVersions": ["*"],
        "operations": operations,
        "resources": [resource],
    }
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [rule]},
            "validations": [{"expression": expression, "message": message, "reason": "Invalid"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    kube.apply(namespace, policy, binding)
    try:
        yield
    finally:
        kube.kubectl("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
        kube.kubectl("delete", "validatingadmissionpolicy", name, "--ignore-not-found")


@pytest.fixture
def status_policy(kube: Kube, namespace: str) -> Iterator[None]:
    expression = (
        f"!has(object.metadata.labels) || !('{LABEL}' in object.metadata.labels) || "
        "!has(object.status) || !has(object.status.tasks) || "
        "!object.status.tasks.exists(t, t.phase == 'Succeeded')"
    )
    with admission_policy(kube, namespace, "pipelineruns/status", ["UPDATE"], expression, DENY_MESSAGE):
        wait_until_enforced(kube, namespace)
        yield


def wait_until_enforced(kube: Kube, namespace: str) -> None:
    """A policy takes a moment to reach the API server's admission chain:
    probe it with a status write of our own until it is refused."""
    probe = run("probe", "no-such-pipeline")
    probe["metadata"]["labels"] = {LABEL: "true"}
    kube.apply(namespace, probe)
    refused_status = json.dumps({"status": {"tasks": [{"name": "x", "phase": "Succeeded"}]}})

    def refused() -> bool:
        result = kube.kubectl(
            "patch", "pipelinerun", "probe", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", refused_status, check=False,
        )  # fmt: skip
        return result.returncode != 0 and DENY_MESSAGE in result.stderr

    wait_for("the admission policy to be enforced", refused)
    kube.kubectl("delete", "pipelinerun", "probe", "-n", namespace)


def test_a_run_whose_status_is_refused_ends_with_the_reason_and_stops_its_pods(
    kube: Kube, operator: OperatorProcess, namespace: str, status_policy: None
) -> None:
    refused = run("refused-1", "refused")
    refused["metadata"]["labels"] = {LABEL: "true"}
    # Every pod of the run, as the API server reports them (a pod may come
    # and go between two looks): a watch started before the run exists.
    watcher = subprocess.Popen(
        [kube.kubectl_bin, "--kubeconfig", kube.kubeconfig, "get", "pods", "-n", namespace,
         "-l", "sluice.dev/task=long", "--watch", "-o", "name"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    kube.apply(
        namespace,
        pipeline("refused", [task("quick", duration="2s"), task("long", "quick", duration="10m")]),
        refused,
    )
    obj = kube.wait_run(namespace, "refused-1")
    condition = succeeded_condition(obj)
    assert (obj["status"]["phase"], condition["reason"]) == ("Failed", "StatusRejected")
    assert DENY_MESSAGE in condition["message"]
    kube.wait_events(namespace, "refused-1", {"StatusRejected"})

    def long_pod_gone() -> bool:
        return not [
            p for p in kube.pods(namespace, "refused-1") if p.metadata.labels["sluice.dev/task"] == "long"
        ]

    # The long task's pod had been created by the pass whose write was
    # refused; once the run has ended, the operator stops it.
    wait_for("the long task's pod to be stopped", long_pod_gone)
    watcher.terminate()
    seen, _ = watcher.communicate(timeout=10)
    assert seen.strip(), "the long task's pod was never created"


def test_a_namespace_can_refuse_inline_pipelines_so_runs_only_choose_inputs(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # The README's trust model: where people may start runs of existing
    # Pipelines but not define workloads, refuse inline specs at admission.
    message = "runs here must reference a Pipeline"
    expression = "!has(object.spec.pipelineSpec)"
    inline = run("inline-1", "unused")
    inline["spec"] = {"pipelineSpec": {"tasks": [task("a")]}}
    with admission_policy(kube, namespace, "pipelineruns", ["CREATE", "UPDATE"], expression, message):

        def refused() -> bool:
            result = kube.kubectl(
                "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(inline), check=False
            )
            if result.returncode == 0:
                kube.kubectl("delete", "pipelinerun", "inline-1", "-n", namespace, "--wait=false")
            return result.returncode != 0 and message in result.stderr

        wait_for("inline runs to be refused", refused)
        kube.apply(namespace, pipeline("p", [task("a")]), run("by-ref-1", "p"))
        assert kube.wait_run(namespace, "by-ref-1")["status"]["phase"] == "Succeeded"
