"""The validating admission webhook on a real API server: mistakes refused
at `kubectl apply` with the very message the Pipeline's Valid condition
gives, the operator's own certificates trusted through the caBundle it
writes, and what happens while the operator is down (failurePolicy).

The chart's ValidatingWebhookConfiguration is applied as rendered, except
that it calls the local operator process by URL (the tests' API server runs
on this host) and only for the test's namespace.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, pipeline_condition, wait_for
from tests.integration.installed import Installation

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]


def _configuration(kube: Kube, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.api.sanitize_for_serialization(
        client.AdmissionregistrationV1Api(kube.api).read_validating_webhook_configuration(name)
    )
    return found


def _set_policy(kube: Kube, name: str, policy: str) -> None:
    ops = [{"op": "replace", "path": f"/webhooks/{i}/failurePolicy", "value": policy} for i in range(2)]
    kube.kubectl("patch", "validatingwebhookconfiguration", name, "--type=json", "-p", yaml.safe_dump(ops))


@pytest.fixture
def webhook(
    kube: Kube, installation: Installation, operator: OperatorProcess, namespace: str
) -> Iterator[str]:
    assert installation.webhook is not None, "the chart renders the webhook for a cluster-wide install"
    configuration = copy.deepcopy(installation.webhook)
    name = configuration["metadata"]["name"]
    for hook in configuration["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{installation.webhook_port}{path}"}
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        hook["failurePolicy"] = "Fail"  # a call that does not reach the operator shows
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(configuration))
    try:
        wait_for(
            "the operator to write its CA into the configuration",
            lambda: all(
                h.get("clientConfig", {}).get("caBundle") for h in _configuration(kube, name)["webhooks"]
            ),
        )
        probe = pipeline("probe", [task("a")])
        wait_for(
            "the webhook to answer",
            lambda: (
                kube.kubectl(
                    "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(probe), check=False
                ).returncode
                == 0
            ),
        )
        yield name
    finally:
        kube.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


MISTAKES = {
    "cycle": pipeline("cycle", [task("a", "b"), task("b", "a")]),
    "unknown-dependency": pipeline("unknown-dependency", [task("a", "nope")]),
    "bad-reference": pipeline("bad-reference", [task("a", args=["$(params.day)"])]),
    "bad-cron": pipeline("bad-cron", [task("a")], schedule={"cron": "0 25 * * *"}),
}


@pytest.fixture
def unguarded(kube: Kube) -> Iterator[str]:
    """A namespace the webhook does not look at: the operator judges there."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    kube.core.delete_namespace(name)


def test_mistakes_are_refused_at_apply_with_the_conditions_message(
    kube: Kube, webhook: str, namespace: str, unguarded: str
) -> None:
    for name, body in MISTAKES.items():
        refused = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body), check=False)
        assert refused.returncode != 0, f"{name} was accepted"
        assert 'admission webhook "pipelines.sluice.dev" denied the request' in refused.stderr
        kube.apply(unguarded, body)
        valid = wait_for(
            f"{name}'s Valid condition", lambda n=name: pipeline_condition(kube, unguarded, n, "Valid")
        )
        assert valid["status"] == "False"
        assert f"Pipeline is invalid: {valid['reason']}: {valid['message']}" in refused.stderr, refused.stderr
    stored = kube.custom.list_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelines")
    assert [p["metadata"]["name"] for p in stored["items"]] == ["probe"]  # none of the mistakes

    # An edit that breaks a stored Pipeline is refused too; one that only labels it is not.
    broken = pipeline("probe", [task("a", "b"), task("b", "a")])
    refused = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(broken), check=False)
    assert refused.returncode != 0 and "CycleDetected" in refused.stderr
    kube.kubectl("label", "-n", namespace, "pipeline/probe", "team=data")

    # A run that brings its own pipeline is checked (spec and params); a run of a Pipeline is not sent.
    inline = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": "inline"},
        "spec": {"pipelineSpec": MISTAKES["cycle"]["spec"]},
    }
    refused = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(inline), check=False)
    assert refused.returncode != 0 and 'admission webhook "pipelineruns.sluice.dev" denied' in refused.stderr
    assert "PipelineRun is invalid: CycleDetected: tasks form a cycle" in refused.stderr
    unknown_param = copy.deepcopy(inline)
    unknown_param["spec"] = {
        "pipelineSpec": {"tasks": [task("a")]},
        "params": [{"name": "day", "value": "1"}],
    }
    refused = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(unknown_param), check=False
    )
    assert refused.returncode != 0 and "InvalidParams" in refused.stderr
    kube.apply(namespace, run("of-probe", "probe"))
    assert kube.wait_run(namespace, "of-probe")["status"]["phase"] == "Succeeded"


def test_while_the_operator_is_down_the_failure_policy_decides(
    kube: Kube, webhook: str, operator: OperatorProcess, namespace: str
) -> None:
    operator.stop()
    try:
        _set_policy(kube, webhook, "Fail")
        valid = pipeline("valid", [task("a")])
        refused = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(valid), check=False)
        assert refused.returncode != 0 and 'failed calling webhook "pipelines.sluice.dev"' in refused.stderr

        _set_policy(kube, webhook, "Ignore")  # the chart's default
        kube.apply(namespace, MISTAKES["cycle"], valid)
    finally:
        operator.start()
    # The second line: the operator, back, judges what got in meanwhile.
    condition = wait_for(
        "the cycle's Valid condition", lambda: pipeline_condition(kube, namespace, "cycle", "Valid")
    )
    assert (condition["status"], condition["reason"]) == ("False", "CycleDetected")
    valid = wait_for("valid's condition", lambda: pipeline_condition(kube, namespace, "valid", "Valid"))
    assert valid["status"] == "True"


def test_an_emptied_secret_is_filled_again_and_the_new_ca_trusted(
    kube: Kube, webhook: str, installation: Installation, namespace: str
) -> None:
    """The Secret is the one truth: emptied (a restore, a `helm upgrade
    --force`), the operator stores a new chain, serves it, and puts its CA in
    the caBundle, without a restart."""
    secret = f"{webhook}-webhook-tls"
    before = _configuration(kube, webhook)["webhooks"][0]["clientConfig"]["caBundle"]
    remove = '[{"op": "remove", "path": "/data"}]'
    kube.kubectl("patch", "secret", secret, "-n", installation.namespace, "--type=json", "-p", remove)

    def renewed() -> bool:
        bundles = {h["clientConfig"].get("caBundle") for h in _configuration(kube, webhook)["webhooks"]}
        return len(bundles) == 1 and before not in bundles

    wait_for("a new CA in the caBundle", renewed)
    cycle = yaml.safe_dump(MISTAKES["cycle"])

    def refused() -> bool:
        # until the new files are served: a TLS error (failurePolicy Fail in this test)
        answer = kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=cycle, check=False)
        return answer.returncode != 0 and "CycleDetected" in answer.stderr

    # served with the new certificate (kopf reloads the files it changed)
    wait_for("the webhook to refuse with the new chain", refused, timeout=60, interval=1)
