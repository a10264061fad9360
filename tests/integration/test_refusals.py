"""A call the operator's RBAC does not allow is shown on the object whose
pass needed it (a Blocked condition and a Warning Event naming the verb and
resource), and the work goes on by itself once the permission is granted.

Each test runs its own operator, installed by the chart into one namespace
with one verb taken out of its Role, so the session operator stops meanwhile.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.installed import Installation, install_rbac

pytestmark = [pytest.mark.integration, pytest.mark.allows_forbidden, pytest.mark.cluster_scope_only]

Rule = dict[str, Any]


def role_without(installed: Installation, resource: str, verb: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the chart's Role, the same Role without ``verb`` on ``resource``)."""
    role = next(
        d for d in installed.documents if d["kind"] == "Role" and "leader" not in d["metadata"]["name"]
    )
    reduced = yaml.safe_load(yaml.safe_dump(role))
    rules = []
    for rule in reduced["rules"]:
        if resource not in rule["resources"]:
            rules.append(rule)
            continue
        others = [r for r in rule["resources"] if r != resource]
        if others:
            rules.append({**rule, "resources": others})
        verbs = [v for v in rule["verbs"] if v != verb]
        if verbs:
            rules.append({**rule, "resources": [resource], "verbs": verbs})
    reduced["rules"] = rules
    return role, reduced


@pytest.fixture
def reduced_operator(
    kube: Kube,
    helm: str,
    release_namespace: str,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: pathlib.Path,
) -> Iterator[Callable[[str, str], Callable[[], None]]]:
    """Start an operator whose Role lacks one verb; returns a function that
    grants the chart's full Role back."""
    started: list[OperatorProcess] = []
    stopped: list[OperatorProcess] = []

    def start(resource: str, verb: str) -> Callable[[], None]:
        installed = install_rbac(
            kube, helm, "sluice", release_namespace, tmp_path, f"watchNamespace={namespace}"
        )
        full, reduced = role_without(installed, resource, verb)
        kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(reduced))
        operator.stop()
        stopped.append(operator)
        scoped = OperatorProcess("", tmp_path, name="reduced")
        scoped.serve(installed)
        started.append(scoped)
        return lambda: kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(full)) and None

    yield start
    for process in started:
        process.stop()
    if stopped:
        operator.start()


def condition_of(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), None)


def test_a_cancel_the_operator_may_not_carry_out_is_shown_on_the_run_until_granted(
    kube: Kube, namespace: str, reduced_operator: Callable[[str, str], Callable[[], None]]
) -> None:
    grant = reduced_operator("pods", "delete")
    kube.apply(namespace, pipeline("long", [task("sleep", duration="10m")]), run("long-1", "long"))
    wait_for("the task's pod", lambda: kube.pods(namespace, "long-1"))
    kube.kubectl(
        "patch", "pipelinerun", "long-1", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancelled":true}}'
    )

    def blocked() -> dict[str, Any] | None:
        found = condition_of(kube.run(namespace, "long-1"), "Blocked")
        return found if found and found["status"] == "True" else None

    shown = wait_for("the run to show why it cannot stop its pod", blocked)
    assert shown["reason"] == "Forbidden"
    assert 'may not delete pods in namespace "' + namespace + '"' in shown["message"]
    [event] = [e for e in kube.wait_events(namespace, "long-1", {"Forbidden"}) if e.reason == "Forbidden"]
    assert event.type == "Warning" and "may not delete pods" in event.message
    assert kube.run(namespace, "long-1")["status"]["phase"] == "Running"

    grant()
    obj = kube.wait_run(namespace, "long-1", phases=("Cancelled",), timeout=120)
    cleared = condition_of(obj, "Blocked")
    assert cleared is not None and (cleared["status"], cleared["reason"]) == ("False", "Unblocked")
    wait_for("the stopped pod to be gone", lambda: not kube.pods(namespace, "long-1"))


def test_a_pipeline_status_the_operator_may_not_write_is_told_in_an_event(
    kube: Kube, namespace: str, reduced_operator: Callable[[str, str], Callable[[], None]]
) -> None:
    grant = reduced_operator("pipelines/status", "patch")
    kube.apply(namespace, pipeline("nightly", [task("a")]))

    def refused() -> list[Any] | None:
        found = [
            e
            for e in kube.core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=nightly,involvedObject.kind=Pipeline"
            ).items
            if e.reason == "Forbidden"
        ]
        return found or None

    [event, *_] = wait_for("a Forbidden event on the Pipeline", refused)
    assert "may not patch pipelines/status" in event.message

    grant()

    def valid() -> dict[str, Any] | None:
        obj = kube.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "pipelines", "nightly"
        )
        return condition_of(obj, "Valid")

    assert wait_for("the Pipeline's status once granted", valid, timeout=120)["status"] == "True"
