"""PipelineRuns end to end on a real API server (kwok nodes)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import pipeline, run, succeeded_condition, task, tasks_by_name
from tests.integration.conftest import Kube, OperatorProcess, pipeline_condition, wait_for

pytestmark = pytest.mark.integration


def pod_succeeded(pod: Any) -> bool:
    return bool(pod.status.phase == "Succeeded")


def test_diamond_runs_in_dependency_order(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    kube.apply(
        namespace,
        pipeline(
            "diamond",
            [
                task("a", duration="500ms"),
                task("b", "a", duration="300ms"),
                task("c", "a", duration="600ms"),
                task("d", "b", "c"),
            ],
        ),
        run("diamond-1", "diamond"),
    )

    # At every snapshot of the run's pods, a task's pod may only exist if the
    # pods of all the tasks it depends on have succeeded.
    seen: set[str] = set()

    def check_order() -> bool:
        pods = {p.metadata.labels["sluice.dev/task"]: p for p in kube.pods(namespace, "diamond-1")}
        for name in pods:
            seen.add(name)
            for dep in deps[name]:
                done = dep in pods and pod_succeeded(pods[dep])
                assert done, f"{name} started before {dep} succeeded"
        status = kube.run(namespace, "diamond-1").get("status") or {}
        return status.get("phase") == "Succeeded"

    wait_for("diamond run to succeed", check_order, timeout=60, interval=0.05)
    assert seen == {"a", "b", "c", "d"}

    obj = kube.wait_run(namespace, "diamond-1")
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    assert status["progress"] == "4/4"
    assert status["pipelineName"] == "diamond"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["startTime"] <= status["completionTime"]
    condition = succeeded_condition(obj)
    assert (condition["status"], condition["reason"]) == ("True", "Succeeded")
    for name, entry in tasks_by_name(obj).items():
        assert entry["phase"] == "Succeeded", name
        assert entry["podName"] and "jobName" not in entry, name
        assert entry["startTime"] and entry["completionTime"], name
    assert [t["name"] for t in status["pipelineSpec"]["tasks"]] == ["a", "b", "c", "d"]

    table = kube.kubectl("get", "pipelineruns", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PIPELINE", "STATUS", "TASKS", "STARTED", "DURATION", "AGE"]
    assert row.split()[:4] == ["diamond-1", "diamond", "Succeeded", "4/4"]
    assert row.split()[5].endswith("s")  # a duration such as 3s
    pipelines = kube.kubectl("get", "pipelines", "-n", namespace).stdout.splitlines()
    assert pipelines[0].split() == ["NAME", "TASKS", "SCHEDULE", "LAST", "RUN", "AGE"]
    assert pipelines[1].split()[:3] == ["diamond", "4", "diamond-1"]
    kube.wait_events(namespace, "diamond-1", {"Started", "Succeeded"})


def test_failing_task_skips_dependents_and_lets_independent_branch_finish(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    failing = task(
        "extract",
        fail=True,
        annotations={"sim.sluice.dev/exit-code": "3", "sim.sluice.dev/message": "source table missing"},
    )
    kube.apply(
        namespace,
        pipeline(
            "branches",
            [
                failing,
                task("transform", "extract"),
                task("load", "transform"),
                task("audit", duration="1s"),
                task("notify", "audit"),
            ],
        ),
        run("branches-1", "branches"),
    )
    obj = kube.wait_run(namespace, "branches-1")
    status = obj["status"]
    tasks = tasks_by_name(obj)
    assert status["phase"] == "Failed"
    assert tasks["extract"]["phase"] == "Failed"
    assert tasks["extract"]["exitCode"] == 3
    assert "source table missing" in tasks["extract"]["message"]
    assert tasks["transform"]["phase"] == "Skipped"
    assert tasks["load"]["phase"] == "Skipped"
    assert "jobName" not in tasks["transform"]
    assert tasks["audit"]["phase"] == "Succeeded"
    assert tasks["notify"]["phase"] == "Succeeded"
    condition = succeeded_condition(obj)
    assert (condition["status"], condition["reason"]) == ("False", "TaskFailed")
    assert '"extract"' in condition["message"] and "source table missing" in condition["message"]
    assert {j.metadata.labels["sluice.dev/task"] for j in kube.pods(namespace, "branches-1")} == {
        "extract",
        "audit",
        "notify",
    }
    kube.wait_events(namespace, "branches-1", {"TaskFailed", "Failed"})


def test_params_are_substituted_and_missing_required_param_fails_the_run(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    args = ["--day=$(params.day)", "--table=$(params.table)", "--run=$(context.pipelineRun.name)"]
    spec = pipeline(
        "params",
        [task("load", args=args, env=[{"name": "TABLE", "value": "$(params.table)"}])],
        params=[{"name": "day", "default": "2026-01-01"}, {"name": "table", "description": "target table"}],
    )
    kube.apply(
        namespace,
        spec,
        run("with-table", "params", params=[{"name": "table", "value": "sales"}]),
        run("without-table", "params"),
    )

    good = kube.wait_run(namespace, "with-table")
    assert good["status"]["phase"] == "Succeeded"
    [pod] = kube.pods(namespace, "with-table")
    container = pod.spec.containers[0]
    assert container.args == ["--day=2026-01-01", "--table=sales", "--run=with-table"]
    assert {(e.name, e.value) for e in container.env} == {("TABLE", "sales")}
    assert {"name": "table", "value": "sales"} in good["status"]["params"]

    bad = kube.wait_run(namespace, "without-table")
    condition = succeeded_condition(bad)
    assert bad["status"]["phase"] == "Failed"
    assert condition["reason"] == "MissingParams"
    assert "table" in condition["message"]
    assert kube.pods(namespace, "without-table") == []
    kube.wait_events(namespace, "without-table", {"MissingParams"})


@pytest.mark.parametrize(
    ("tasks", "reason", "words"),
    [
        ([task("a", "c"), task("b", "a"), task("c", "b")], "CycleDetected", "a -> c -> b -> a"),
        ([task("a"), task("b", "ghost")], "UnknownDependency", '"ghost"'),
        ([task("a", args=["$(params.nope)"])], "InvalidReference", "$(params.nope)"),
    ],
)
def test_invalid_pipelines_fail_the_run_with_a_specific_reason(
    kube: Kube,
    operator: OperatorProcess,
    namespace: str,
    tasks: list[dict[str, Any]],
    reason: str,
    words: str,
) -> None:
    kube.apply(namespace, pipeline("bad", tasks), run("bad-1", "bad"))
    obj = kube.wait_run(namespace, "bad-1")
    condition = succeeded_condition(obj)
    assert obj["status"]["phase"] == "Failed"
    assert condition["reason"] == reason
    assert words in condition["message"]
    kube.wait_events(namespace, "bad-1", {reason})
    valid = wait_for("pipeline Valid condition", lambda: pipeline_condition(kube, namespace, "bad", "Valid"))
    assert (valid["status"], valid["reason"]) == ("False", reason)


def run_reason(kube: Kube, namespace: str, name: str) -> str | None:
    status = kube.run(namespace, name).get("status") or {}
    return next((c["reason"] for c in status.get("conditions") or () if c["type"] == "Succeeded"), None)


def test_the_pipeline_shows_its_newest_run_started_by_hand(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    def last_run() -> str | None:
        obj = kube.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "pipelines", "shown"
        )
        return (obj.get("status") or {}).get("lastRunName")

    kube.apply(namespace, pipeline("shown", [task("a")]), run("shown-1", "shown"))
    wait_for("shown-1 as the last run", lambda: last_run() == "shown-1")
    # A burst is written as one or two updates of the Pipeline, not one per
    # run: what it shows then is a run of the burst, not the one before.
    burst = [f"burst-{i}" for i in range(12)]
    kube.apply(namespace, *[run(name, "shown") for name in burst])
    for name in burst:
        kube.wait_run(namespace, name)
    wait_for("a run of the burst as the last run", lambda: last_run() in burst)
    kube.apply(namespace, run("shown-2", "shown"))
    wait_for("shown-2 as the last run", lambda: last_run() == "shown-2")


def test_run_of_missing_pipeline_fails_after_grace(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, run("orphan", "does-not-exist"))
    obj = kube.wait_run(namespace, "orphan")
    condition = succeeded_condition(obj)
    assert condition["reason"] == "PipelineNotFound"
    assert '"does-not-exist"' in condition["message"]


def test_run_applied_before_its_pipeline_waits_for_it(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, run("early", "late"))
    wait_for(
        "run to wait for its pipeline", lambda: run_reason(kube, namespace, "early") == "PipelineNotFound"
    )
    kube.apply(namespace, pipeline("late", [task("only")]))
    assert kube.wait_run(namespace, "early")["status"]["phase"] == "Succeeded"


def test_inline_pipeline_spec(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    inline = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": "inline"},
        "spec": {"pipelineSpec": {"tasks": [task("one"), task("two", "one")]}},
    }
    kube.apply(namespace, inline)
    obj = kube.wait_run(namespace, "inline")
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["pipelineName"] == "(inline)"


def test_editing_the_pipeline_does_not_change_a_started_run(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(namespace, pipeline("edit", [task("first", duration="2s")]), run("edit-1", "edit"))
    wait_for("first pod", lambda: kube.pods(namespace, "edit-1"))
    kube.apply(namespace, pipeline("edit", [task("first", duration="2s"), task("added", "first")]))
    obj = kube.wait_run(namespace, "edit-1")
    assert [t["name"] for t in obj["status"]["tasks"]] == ["first"]
    assert obj["status"]["progress"] == "1/1"


def test_operator_killed_mid_run_finishes_it_with_one_pod_per_task(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    names = ["s1", "s2", "s3", "s4"]
    chain = [task(n, *names[i - 1 : i], duration="1500ms") for i, n in enumerate(names)]
    kube.apply(namespace, pipeline("chain", chain), run("chain-1", "chain"))
    wait_for(
        "second task to start", lambda: len(kube.pods(namespace, "chain-1")) >= 2, timeout=30, interval=0.05
    )
    operator.kill()
    # While the operator is down its running task finishes; nothing else may start.
    pods_done = lambda: all(pod_succeeded(p) for p in kube.pods(namespace, "chain-1"))  # noqa: E731
    wait_for("running task to complete", pods_done, timeout=30)
    assert len(kube.pods(namespace, "chain-1")) == 2
    operator.start()
    obj = kube.wait_run(namespace, "chain-1")
    assert obj["status"]["phase"] == "Succeeded"
    pods = kube.pods(namespace, "chain-1")
    assert sorted(p.metadata.labels["sluice.dev/task"] for p in pods) == names
    # Every outcome recorded, every tracking finalizer released.
    wait_for(
        "finalizers released", lambda: all(not p.metadata.finalizers for p in kube.pods(namespace, "chain-1"))
    )


def test_deleting_a_run_deletes_its_pods_and_releases_their_finalizers(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline("slow", [task("wait", duration="10m"), task("par", duration="10m")]),
        run("slow-1", "slow"),
    )
    wait_for("pods to exist", lambda: len(kube.pods(namespace, "slow-1")) == 2)
    assert all(p.metadata.finalizers == ["sluice.dev/task-outcome"] for p in kube.pods(namespace, "slow-1"))
    kube.kubectl("delete", "pipelinerun", "slow-1", "-n", namespace)
    wait_for("pods to be garbage-collected", lambda: not kube.pods(namespace, "slow-1"))


def test_api_server_rejects_duplicate_task_names(kube: Kube, namespace: str) -> None:
    result = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", check=False, stdin=_yaml(pipeline("dup", [task("a"), task("a")]))
    )
    assert result.returncode != 0
    assert "Duplicate value" in result.stderr
    assert "spec.tasks[1]" in result.stderr


@pytest.mark.parametrize("image", ["", "Not An Image", "busybox:", "Busybox:1.36", "repo//image"])
def test_api_server_rejects_bad_image(kube: Kube, namespace: str, image: str) -> None:
    bad = pipeline("img", [{"name": "a", "image": image}])
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", check=False, stdin=_yaml(bad))
    assert result.returncode != 0
    assert "spec.tasks[0].image" in result.stderr


def test_api_server_rejects_run_with_both_or_neither_pipeline_source(kube: Kube, namespace: str) -> None:
    neither = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": {"name": "x"},
        "spec": {},
    }
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", check=False, stdin=_yaml(neither))
    assert result.returncode != 0
    assert "exactly one of spec.pipelineRef, spec.pipelineSpec or spec.rerunOf" in result.stderr


def _yaml(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(obj)


def test_workspace_claim_is_created_per_run_owned_by_it_and_mounted_in_every_task(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    storage_class = f"sluice-{namespace}"
    kube.apply(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"pv-{namespace}"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": storage_class,
                "persistentVolumeReclaimPolicy": "Delete",
                "hostPath": {"path": f"/tmp/{namespace}"},
            },
        },
    )
    template = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": storage_class,
        "resources": {"requests": {"storage": "1Gi"}},
    }
    try:
        kube.apply(
            namespace,
            pipeline(
                "ws",
                [task("write"), task("read", "write")],
                workspace={"mountPath": "/data", "volumeClaimTemplate": template, "runOverride": "Any"},
            ),
            pipeline("ws-fixed", [task("a")], workspace={"volumeClaimTemplate": template}),
            run("ws-1", "ws"),
            run("ws-shared", "ws", workspace={"volume": {"emptyDir": {}}}),
            run("ws-hostpath", "ws-fixed", workspace={"volume": {"hostPath": {"path": "/etc"}}}),
        )
        obj = kube.wait_run(namespace, "ws-1")
        assert obj["status"]["phase"] == "Succeeded"
        claim_name = obj["status"]["workspaceClaimName"]
        claim = kube.core.read_namespaced_persistent_volume_claim(claim_name, namespace)
        assert claim.metadata.owner_references[0].uid == obj["metadata"]["uid"]
        assert claim.spec.storage_class_name == storage_class
        for task_pod in kube.pods(namespace, "ws-1"):
            pod = task_pod.spec
            assert pod.volumes[0].persistent_volume_claim.claim_name == claim_name
            assert pod.containers[0].volume_mounts[0].mount_path == "/data"

        shared = kube.wait_run(namespace, "ws-shared")
        assert shared["status"]["phase"] == "Succeeded"
        assert "workspaceClaimName" not in shared["status"]
        for task_pod in kube.pods(namespace, "ws-shared"):
            assert task_pod.spec.volumes[0].empty_dir is not None

        # A Pipeline that does not allow it keeps its workspace: whoever may
        # create runs cannot mount a hostPath into its pods.
        refused = kube.wait_run(namespace, "ws-hostpath")
        condition = succeeded_condition(refused)
        assert (refused["status"]["phase"], condition["reason"]) == ("Failed", "WorkspaceOverrideNotAllowed")
        assert "runOverride" in condition["message"]
        assert not kube.pods(namespace, "ws-hostpath")
    finally:
        kube.kubectl("delete", "pv", f"pv-{namespace}", "--wait=false", check=False)


def test_api_server_rejects_workspace_with_two_sources(kube: Kube, namespace: str) -> None:
    bad = pipeline("ws", [task("a")], workspace={"volume": {"emptyDir": {}}, "volumeClaimTemplate": {}})
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", check=False, stdin=_yaml(bad))
    assert result.returncode != 0
    assert "exactly one of volumeClaimTemplate or volume" in result.stderr


def test_a_run_is_deleted_with_its_pods_once_its_time_to_live_after_finishing_is_over(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(
        namespace,
        pipeline("brief", [task("a")]),
        run("brief-1", "brief", ttlSecondsAfterFinished=2),
        run("kept-1", "brief"),  # the operator's default (7 days) keeps it
    )
    assert kube.wait_run(namespace, "brief-1")["status"]["phase"] == "Succeeded"

    def gone() -> bool:
        names = [
            r["metadata"]["name"]
            for r in kube.custom.list_namespaced_custom_object(
                "sluice.dev", "v1alpha1", namespace, "pipelineruns"
            )["items"]
        ]
        return "brief-1" not in names and not kube.pods(namespace, "brief-1")

    # The pods go by garbage collection, which a fresh cluster may need some time to start.
    wait_for("the run and its pods to be deleted", gone, timeout=90)
    assert kube.wait_run(namespace, "kept-1")["status"]["phase"] == "Succeeded"
    assert kube.pods(namespace, "kept-1")
