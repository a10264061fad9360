"""Fan-out (matrix) and script tasks on the real API server, with kwok pods."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import watch

from tests.builders import pipeline, run, task, tasks_by_name
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration


def instance_pods(kube: Kube, namespace: str, run_name: str, name: str) -> list[Any]:
    """The pods of a task's instances, by instance then attempt."""
    pods = [p for p in kube.pods(namespace, run_name) if p.metadata.labels.get("sluice.dev/task") == name]
    return sorted(
        pods,
        key=lambda p: (
            int(p.metadata.labels["sluice.dev/instance"]),
            int(p.metadata.labels["sluice.dev/attempt"]),
        ),
    )


def args_of(pod: Any) -> list[str]:
    return list(pod.spec.containers[0].args or [])


class PodChanges:
    """Every change to a run's pods from now on, handed to ``on_change`` by a
    watch in a thread. ``start`` returns once the API server has confirmed
    the watch (the bookmark that ends its initial events), so nothing made
    after it is missed, and no resourceVersion to resume from can be too old
    by the time the watch opens; an error that ends the watch is kept, and
    ``check`` fails the test with it.
    """

    def __init__(
        self, kube: Kube, namespace: str, run_name: str, on_change: Callable[[dict[str, Any]], None]
    ) -> None:
        self.kube, self.namespace, self.run_name, self.on_change = kube, namespace, run_name, on_change
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: Exception | None = None

    def _watch(self) -> None:
        """Raw events (decoding pods into models is slow enough that the API
        server closes a watcher that falls behind a 300-pod burst), resumed
        from the last version seen whenever the server ends the stream."""
        version: str | None = None
        try:
            while not self.done.is_set():
                options: dict[str, Any] = {"allow_watch_bookmarks": True, "timeout_seconds": 300}
                if version is None:
                    options |= {"send_initial_events": True, "resource_version_match": "NotOlderThan"}
                else:
                    options["resource_version"] = version
                for change in watch.Watch().stream(
                    self.kube.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=f"sluice.dev/run={self.run_name}",
                    deserialize=False,
                    **options,
                ):
                    meta = change["object"]["metadata"]
                    version = meta["resourceVersion"]
                    if change["type"] == "BOOKMARK":
                        if (meta.get("annotations") or {}).get("k8s.io/initial-events-end") == "true":
                            self.ready.set()
                        continue
                    self.on_change(change)
                    if self.done.is_set():
                        return
        except Exception as error:
            self.error = error
            self.ready.set()

    def start(self) -> None:
        threading.Thread(target=self._watch, daemon=True).start()
        wait_for("the pod watch to open", self.ready.is_set, timeout=30)
        self.check()

    def check(self) -> None:
        assert self.error is None, f"the pod watch ended: {self.error}"


def lister(files: list[Any]) -> dict[str, Any]:
    return task(
        "list",
        results=[{"name": "files"}],
        annotations={"sim.sluice.dev/result": "files=" + json.dumps(files)},
    )


def test_a_task_fans_out_over_a_literal_a_param_and_a_result_and_its_reader_gets_every_result_in_order(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    by_result = task(
        "by-result",
        "list",
        args=["--file=$(matrix.file)", "--day=$(params.day)"],
        results=[{"name": "rows"}],
        annotations={"sim.sluice.dev/result-by-instance": "rows="},
        matrix={"axes": [{"name": "file", "from": "$(tasks.list.results.files)"}]},
    )
    spec = pipeline(
        "fan",
        [
            lister(["a.csv", "b.csv", "c.csv", "d.csv"]),
            task(
                "by-literal", args=["$(matrix.num)"], matrix={"axes": [{"name": "num", "values": [1, "two"]}]}
            ),
            task(
                "by-param",
                args=["$(matrix.region)"],
                matrix={"axes": [{"name": "region", "from": "$(params.regions)"}]},
            ),
            by_result,
            task("reduce", "by-result", args=["$(tasks.by-result.results.rows)"]),
        ],
        params=[{"name": "regions"}, {"name": "day", "default": "2026-11-24"}],
    )
    kube.apply(
        namespace, spec, run("fan-1", "fan", params=[{"name": "regions", "value": '["eu", "us", "ap"]'}])
    )
    obj = kube.wait_run(namespace, "fan-1")
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    tasks = tasks_by_name(obj)
    assert [args_of(p) for p in instance_pods(kube, namespace, "fan-1", "by-literal")] == [["1"], ["two"]]
    assert [args_of(p) for p in instance_pods(kube, namespace, "fan-1", "by-param")] == [
        ["eu"],
        ["us"],
        ["ap"],
    ]
    assert [args_of(p) for p in instance_pods(kube, namespace, "fan-1", "by-result")] == [
        [f"--file={f}", "--day=2026-11-24"] for f in ["a.csv", "b.csv", "c.csv", "d.csv"]
    ]
    assert [(i["index"], i["phase"], i["values"]) for i in tasks["by-result"]["instances"]] == [
        (0, "Succeeded", "file=a.csv"),
        (1, "Succeeded", "file=b.csv"),
        (2, "Succeeded", "file=c.csv"),
        (3, "Succeeded", "file=d.csv"),
    ]
    [reduce] = [p for p in kube.pods(namespace, "fan-1") if p.metadata.labels["sluice.dev/task"] == "reduce"]
    assert args_of(reduce) == ['["0","1","2","3"]']
    # Instances count one by one in kubectl's TASKS column: 1 + 2 + 3 + 4 + 1.
    assert obj["status"]["progress"] == "11/11"


def test_a_cross_product_with_an_included_combination_runs_each_combination_once(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    matrix = {
        "axes": [
            {"name": "region", "values": ["eu", "us"]},
            {"name": "kind", "values": ["orders", "refunds"]},
        ],
        "include": [{"region": "ap", "kind": "orders"}],
    }
    spec = pipeline("cross", [task("load", args=["$(matrix.region)/$(matrix.kind)"], matrix=matrix)])
    kube.apply(namespace, spec, run("cross-1", "cross"))
    obj = kube.wait_run(namespace, "cross-1")
    assert obj["status"]["phase"] == "Succeeded"
    assert [args_of(p) for p in instance_pods(kube, namespace, "cross-1", "load")] == [
        ["eu/orders"],
        ["eu/refunds"],
        ["us/orders"],
        ["us/refunds"],
        ["ap/orders"],
    ]


def test_an_empty_list_skips_the_task_and_its_dependents_follow_their_trigger_rules(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    fanned = task(
        "load",
        "list",
        results=[{"name": "rows"}],
        matrix={"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}]},
    )
    spec = pipeline(
        "empty",
        [
            lister([]),
            fanned,
            task("publish", "load"),
            task("summary", "load", triggerRule="AllDone", args=["$(tasks.load.results.rows)"]),
        ],
    )
    kube.apply(namespace, spec, run("empty-1", "empty"))
    obj = kube.wait_run(namespace, "empty-1")
    tasks = tasks_by_name(obj)
    assert (tasks["load"]["phase"], tasks["load"]["reason"]) == ("Skipped", "EmptyMatrix")
    assert tasks["publish"]["phase"] == "Skipped"
    assert tasks["summary"]["phase"] == "Succeeded"
    [summary] = [
        p for p in kube.pods(namespace, "empty-1") if p.metadata.labels["sluice.dev/task"] == "summary"
    ]
    assert args_of(summary) == ["[]"]
    assert obj["status"]["phase"] == "Succeeded"


def test_one_failing_instance_is_retried_alone_and_fails_its_task_after_the_others_finish(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    load = task(
        "load",
        retries={"limit": 1, "backoff": {"initialSeconds": 0}},
        matrix={"axes": [{"name": "num", "values": [0, 1, 2]}]},
    )
    load["metadata"]["labels"]["sim.sluice.dev/fail-instance"] = "1"
    spec = pipeline("flaky", [load, task("after", "load")])
    kube.apply(namespace, spec, run("flaky-1", "flaky"))
    obj = kube.wait_run(namespace, "flaky-1")
    tasks = tasks_by_name(obj)
    instances = tasks["load"]["instances"]
    assert [(i["index"], i["phase"]) for i in instances] == [
        (0, "Succeeded"),
        (1, "Failed"),
        (2, "Succeeded"),
    ]
    assert instances[1]["attempts"] == 2 and instances[1]["exitCode"] == 1
    assert (tasks["load"]["phase"], tasks["load"]["reason"]) == ("Failed", "InstanceFailed")
    assert "instance 1 (num=1)" in tasks["load"]["message"]
    assert tasks["after"]["phase"] == "Skipped"
    pods = instance_pods(kube, namespace, "flaky-1", "load")
    per_instance = Counter(p.metadata.labels["sluice.dev/instance"] for p in pods)
    assert per_instance == {"0": 1, "1": 2, "2": 1}
    assert obj["status"]["phase"] == "Failed"
    events = kube.wait_events(namespace, "flaky-1", {"TaskFailed"})
    assert any("instance 1" in e.message for e in events if e.reason == "TaskFailed")


def test_a_result_that_is_not_a_json_array_fails_the_task_with_a_specific_reason(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    listing = task(
        "list", results=[{"name": "files"}], annotations={"sim.sluice.dev/result": "files=a.csv,b.csv"}
    )
    fanned = task("load", "list", matrix={"axes": [{"name": "f", "from": "$(tasks.list.results.files)"}]})
    kube.apply(namespace, pipeline("bad", [listing, fanned]), run("bad-1", "bad"))
    obj = kube.wait_run(namespace, "bad-1")
    load = tasks_by_name(obj)["load"]
    assert (load["phase"], load["reason"]) == ("Failed", "InvalidMatrix")
    assert "JSON array" in load["message"] and "a.csv,b.csv" in load["message"]
    assert instance_pods(kube, namespace, "bad-1", "load") == []


def test_matrix_parallelism_bounds_the_instances_running_at_once_as_a_watch_sees_them(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    active: set[str] = set()
    most = 0
    seen: set[str] = set()

    def count(change: dict[str, Any]) -> None:
        nonlocal most
        pod = change["object"]
        name = pod["metadata"]["name"]
        seen.add(name)
        if change["type"] == "DELETED" or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            active.discard(name)
        else:
            active.add(name)
        most = max(most, len(active))

    changes = PodChanges(kube, namespace, "para-1", count)
    changes.start()
    fanned = task(
        "load", duration="1s", matrix={"axes": [{"name": "num", "values": list(range(8))}], "parallelism": 3}
    )
    kube.apply(namespace, pipeline("para", [fanned]), run("para-1", "para"))
    obj = kube.wait_run(namespace, "para-1", timeout=120)
    assert obj["status"]["phase"] == "Succeeded"
    wait_for(
        "the watch to have seen all 8 pods end", lambda: changes.check() or (len(seen) >= 8 and not active)
    )
    changes.done.set()
    assert most == 3, f"at most {most} instance pods were active at once; parallelism is 3"


def test_a_thousand_instances_run_in_one_run_within_its_status_limits(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Long values: each instance's reminder of them is as long as it gets.
    regions = [f"region-{i:02d}-{'x' * 24}" for i in range(40)]
    parts = [f"partition-{j:02d}-{'y' * 20}" for j in range(25)]
    matrix = {"axes": [{"name": "a", "values": regions}, {"name": "b", "values": parts}]}
    fanned = task("load", args=["$(matrix.a)/$(matrix.b)"], matrix=matrix, results=[{"name": "rows"}])
    fanned["metadata"]["annotations"]["sim.sluice.dev/result-by-instance"] = "rows=12345678-"
    kube.apply(
        namespace,
        pipeline("a-rather-long-pipeline-name-for-this-wide-fan-out", [fanned, task("after", "load")]),
    )
    kube.apply(
        namespace,
        run(
            "a-rather-long-run-name-for-a-wide-fan-out-1", "a-rather-long-pipeline-name-for-this-wide-fan-out"
        ),
    )
    obj = kube.wait_run(namespace, "a-rather-long-run-name-for-a-wide-fan-out-1", timeout=600)
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("conditions")
    instances = tasks_by_name(obj)["load"]["instances"]
    assert len(instances) == 1000 and all(i["phase"] == "Succeeded" for i in instances)
    assert instances[999]["values"].startswith("a=region-39-") and len(instances[999]["values"]) == 64
    assert instances[999]["results"] == [{"name": "rows", "value": "12345678-999"}]
    size = len(json.dumps(obj, separators=(",", ":")))
    assert size < 1_450_000, f"the run's object is {size} bytes"


def test_an_operator_killed_mid_fan_out_creates_no_instance_twice(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    added: Counter[str] = Counter()

    def count_added(change: dict[str, Any]) -> None:
        if change["type"] == "ADDED":
            labels = change["object"]["metadata"]["labels"]
            added[f"{labels['sluice.dev/instance']}/{labels['sluice.dev/attempt']}"] += 1

    changes = PodChanges(kube, namespace, "kill-1", count_added)
    changes.start()
    # No parallelism: the first pass creates all 300 pods before it writes
    # the status that records them, and the kill lands in between.
    matrix = {"axes": [{"name": "num", "values": list(range(300))}]}
    kube.apply(
        namespace, pipeline("kill", [task("load", duration="2s", matrix=matrix)]), run("kill-1", "kill")
    )
    wait_for("the first instance pod", lambda: kube.pods(namespace, "kill-1"), timeout=60, interval=0.01)
    operator.kill()
    operator.start()
    obj = kube.wait_run(namespace, "kill-1", timeout=240)
    assert obj["status"]["phase"] == "Succeeded"
    wait_for("the watch to have seen 300 pods", lambda: changes.check() or len(added) >= 300, timeout=30)
    changes.done.set()
    # One pod per instance, all first attempts: none created twice, none lost and retried.
    assert sorted(added) == sorted(f"{n}/0" for n in range(300))
    assert set(added.values()) == {1}, [k for k, v in added.items() if v > 1]
    instances = tasks_by_name(obj)["load"]["instances"]
    assert {(i["phase"], i.get("attempts"), i.get("reason")) for i in instances} == {
        ("Succeeded", None, None)
    }


def test_a_script_tasks_pod_as_stored_carries_its_param_in_the_environment_not_in_the_code(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # What the API server stores (kwok runs nothing; the real-node test in
    # test_cluster.py and the unit tests run such scripts in real shells).
    hostile = '"; echo INJECTED; echo "$(id)'
    scripted = task("greet", script='echo "hello $(params.who)"\n', args=["--flag"])
    kube.apply(namespace, pipeline("script", [scripted], params=[{"name": "who"}]))
    kube.apply(namespace, run("script-1", "script", params=[{"name": "who", "value": hostile}]))
    obj = kube.wait_run(namespace, "script-1")
    assert obj["status"]["phase"] == "Succeeded"
    [pod] = kube.pods(namespace, "script-1")
    container = pod.spec.containers[0]
    assert container.command == ["/bin/sh", "-c", 'echo "hello $${SLUICE_PARAMS_WHO}"\n', "sluice-script"]
    assert container.args == ["--flag"]
    env = {e.name: e.value for e in container.env}
    assert env["SLUICE_PARAMS_WHO"] == hostile.replace("$", "$$")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"script": "echo hi", "command": ["sh"]}, "either script or command"),
        ({"matrix": {"parallelism": 2}}, "a matrix needs axes or include"),
        (
            {"matrix": {"axes": [{"name": "a", "values": [1], "from": "$(params.x)"}]}},
            "exactly one of values or from",
        ),
        ({"matrix": {"axes": [{"name": "a", "from": "params.x"}]}}, "should match"),
    ],
)
def test_a_malformed_script_or_matrix_is_refused_at_apply_time(
    kube: Kube, namespace: str, fields: dict[str, Any], message: str
) -> None:
    refused = kube.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps(pipeline("refused", [task("t", **fields)])),
        check=False,
    )
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr


def test_a_matrix_no_run_could_expand_makes_the_pipeline_invalid(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    bad = task("t", args=["$(matrix.regon)"], matrix={"axes": [{"name": "region", "values": ["eu"]}]})
    kube.apply(namespace, pipeline("typo", [bad]))

    def valid() -> dict[str, Any] | None:
        obj = kube.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "pipelines", "typo"
        )
        return next(
            (c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == "Valid"), None
        )

    condition = wait_for("the pipeline's Valid condition", valid)
    assert condition["status"] == "False" and condition["reason"] == "InvalidReference"
    assert "$(matrix.region)" in condition["message"]
