"""`kubectl sluice` against the cluster, as kubectl runs it (found on PATH),
under a namespace user's own credentials: an editor bound to Kubernetes'
built-in `edit` role, which the chart's aggregated user roles extend. The
plugin never needs more than its user already has.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.builders import pipeline, task
from tests.builders import run as run_body
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.installed import render, token_kubeconfig

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]

BIN = str(pathlib.Path(sys.executable).parent)


@dataclass(frozen=True)
class User:
    """A namespace user with a kubeconfig of their own, running `kubectl sluice`."""

    kube: Kube
    kubeconfig: pathlib.Path
    namespace: str

    @property
    def env(self) -> dict[str, str]:
        """kubectl and the plugin on PATH, this user's kubeconfig, no colour."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{BIN}:{pathlib.Path(self.kube.kubectl_bin).parent}:{os.environ['PATH']}",
            "NO_COLOR": "1",
        }

    def sluice(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kube.kubectl_bin, "sluice", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.sluice(*args)
        assert result.returncode == 0, f"kubectl sluice {' '.join(args)}: {result.stderr}"
        return result.stdout


@pytest.fixture(scope="session")
def user_roles(kube: Kube, helm: str) -> Iterator[None]:
    """The chart's aggregated user roles, as a cluster-wide install applies them."""
    documents = [
        d
        for d in yaml.safe_load_all(render(helm, "sluice-cli-test", "sluice-system"))
        if d and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "user-roles"
    ]
    assert {d["metadata"]["name"] for d in documents} == {"sluice-cli-test-view", "sluice-cli-test-edit"}
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    yield
    for doc in documents:
        kube.kubectl("delete", "clusterrole", doc["metadata"]["name"], "--ignore-not-found")


def _user(kube: Kube, namespace: str, role: str, directory: pathlib.Path) -> User:
    """A ServiceAccount bound to the built-in ``role`` in ``namespace`` only."""
    account = f"{role}-user"
    kube.kubectl("create", "serviceaccount", account, "-n", namespace)
    kube.kubectl(
        "create",
        "rolebinding",
        account,
        "-n",
        namespace,
        f"--clusterrole={role}",
        f"--serviceaccount={namespace}:{account}",
    )
    subject = f"system:serviceaccount:{namespace}:{account}"
    verb = "create" if role == "edit" else "list"

    def granted() -> bool:
        ask = ("auth", "can-i", verb, "pipelineruns.sluice.dev", "-n", namespace, "--as", subject)
        return kube.kubectl(*ask, check=False).stdout.strip() == "yes"

    # The aggregation controller and the authorizer's cache both lag a little.
    wait_for(f"{role} to cover pipelineruns for {subject}", granted)
    token = kube.kubectl("create", "token", account, "-n", namespace, "--duration", "1h").stdout.strip()
    path = directory / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(token_kubeconfig(kube.kubeconfig, token, namespace)))
    return User(kube, path, namespace)


@pytest.fixture
def editor(kube: Kube, namespace: str, user_roles: None, tmp_path: pathlib.Path) -> User:
    return _user(kube, namespace, "edit", tmp_path)


def _etl(name: str, fail: bool = False) -> dict:
    load = task(
        "load",
        "transform",
        fail=fail,
        annotations={"sim.sluice.dev/exit-code": "3", "sim.sluice.dev/message": "table sales is locked"},
    )
    return pipeline(
        name,
        [
            task("extract"),
            task("transform", "extract"),
            load,
            task("report", "load"),
            task("audit", "extract"),
        ],
        params=[{"name": "day"}],
    )


def test_start_wait_list_graph_as_a_namespace_editor(
    kube: Kube, operator: OperatorProcess, namespace: str, editor: User
) -> None:
    kube.apply(namespace, _etl("etl"), _etl("etl-broken", fail=True))

    started = editor.sluice("start", "etl", "-p", "day=2026-11-24", "--wait", "--timeout", "90")
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    assert name.startswith("etl-")
    assert f"run {name} Succeeded" in started.stderr
    assert "load Succeeded" in started.stderr
    assert kube.run(namespace, name)["spec"]["params"] == [{"name": "day", "value": "2026-11-24"}]

    failed = editor.sluice("start", "etl-broken", "-p", "day=2026-11-24", "--wait", "--timeout", "90")
    assert failed.returncode == 1, failed.stderr
    broken = failed.stdout.strip()
    assert f"run {broken} Failed" in failed.stderr and "TaskFailed" in failed.stderr

    table = editor.ok("list").splitlines()
    assert table[0].split() == ["NAME", "PIPELINE", "STATUS", "TASKS", "STARTED", "DURATION"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[name][1:4] == ["etl", "Succeeded", "5/5"]
    assert rows[broken][1:3] == ["etl-broken", "Failed"]
    created = [kube.run(namespace, r)["metadata"]["creationTimestamp"] for r in rows]
    assert created == sorted(created, reverse=True)  # newest first (ties within a second either way)
    only = editor.ok("list", "--pipeline", "etl", "-o", "name").split()
    assert only == [f"pipelinerun.sluice.dev/{name}"]
    listed = json.loads(editor.ok("list", "-o", "json"))
    assert {item["metadata"]["name"] for item in listed["items"]} == {name, broken}

    graph = editor.ok("graph", broken).splitlines()
    line = {name: next(g for g in graph if f" {name} " in g) for name in ("load", "report", "audit")}
    assert "Failed" in line["load"] and "← transform" in line["load"]
    assert "exit code 3" in graph[graph.index(line["load"]) + 1]
    assert "table sales is locked" in graph[graph.index(line["load"]) + 1]
    assert "Skipped" in line["report"]
    assert "Succeeded" in line["audit"]
    assert graph[0].split()[:4] == [broken, "pipeline", "etl-broken", "✘"]


def test_refusals_are_one_line_and_exit_two(
    kube: Kube, operator: OperatorProcess, namespace: str, editor: User
) -> None:
    kube.apply(namespace, _etl("etl"))
    unknown = editor.sluice("start", "etl", "-p", "dya=1")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: pipeline etl has no param dya (its params: day)"
    missing = editor.sluice("start", "etl")
    assert missing.returncode == 2 and "needs a value for day: -p day=VALUE" in missing.stderr
    nothing = editor.sluice("start", "nope")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == f'error: pipeline "nope" not found in namespace "{namespace}"'
    no_run = editor.sluice("graph", "nope")
    assert no_run.returncode == 2 and "not found" in no_run.stderr and "Traceback" not in no_run.stderr
    # nothing was created by any of them
    assert (
        kube.custom.list_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelineruns")[
            "items"
        ]
        == []
    )


def test_cancel_and_rerun_from_failure(
    kube: Kube, operator: OperatorProcess, namespace: str, editor: User
) -> None:
    slow = pipeline("slow", [task("wait", duration="120s")])
    kube.apply(namespace, slow, _etl("etl-broken", fail=True))
    run = editor.ok("start", "slow").strip()
    wait_for(
        "the slow task to run",
        lambda: (kube.run(namespace, run).get("status") or {}).get("phase") == "Running",
    )
    early = editor.sluice("rerun", run)
    assert early.returncode == 2
    assert f"run {run} is Running: only a finished run can be rerun" in early.stderr
    assert editor.ok("cancel", run).strip() == f"pipelinerun.sluice.dev/{run} cancelled"
    assert kube.wait_run(namespace, run, ("Cancelled",))["status"]["tasks"][0]["phase"] == "Cancelled"
    again = editor.sluice("cancel", run)
    assert again.returncode == 0 and "already Cancelled: nothing to cancel" in again.stderr

    broken = editor.sluice("start", "etl-broken", "-p", "day=1", "--wait").stdout.strip()
    rerun = editor.sluice("rerun", broken, "--wait", "--timeout", "90")
    assert rerun.returncode == 1, rerun.stderr  # load fails again
    name = rerun.stdout.strip()
    assert name.startswith(f"{broken}-rerun-")
    obj = kube.run(namespace, name)
    assert obj["spec"] == {"rerunOf": {"name": broken}}
    tasks = {t["name"]: t for t in obj["status"]["tasks"]}
    assert tasks["extract"]["reason"] == "Reused" and tasks["load"]["phase"] == "Failed"


def test_logs_of_a_gone_pod_come_from_the_status(
    kube: Kube, operator: OperatorProcess, namespace: str, editor: User
) -> None:
    kube.apply(namespace, _etl("etl-broken", fail=True))
    run = editor.sluice("start", "etl-broken", "-p", "day=1", "--wait").stdout.strip()
    pod = next(
        p.metadata.name for p in kube.pods(namespace, run) if p.metadata.labels["sluice.dev/task"] == "load"
    )
    kube.core.delete_namespaced_pod(pod, namespace)
    wait_for(f"pod {pod} to go", lambda: pod not in {p.metadata.name for p in kube.pods(namespace, run)})
    result = editor.sluice("logs", run, "load")
    assert result.returncode == 0, result.stderr
    assert f"load: pod {pod} is gone" in result.stderr
    assert "table sales is locked" in result.stdout
    unknown = editor.sluice("logs", run, "lod")
    assert unknown.returncode == 2 and 'has no task "lod"' in unknown.stderr


def test_a_viewer_can_look_but_not_start(
    kube: Kube, operator: OperatorProcess, namespace: str, user_roles: None, tmp_path: pathlib.Path
) -> None:
    viewer = _user(kube, namespace, "view", tmp_path)
    kube.apply(namespace, _etl("etl"))
    assert viewer.sluice("list").stderr.strip() == f"No pipelineruns found in {namespace} namespace."
    refused = viewer.sluice("start", "etl", "-p", "day=1")
    assert refused.returncode == 1
    assert 'cannot create resource "pipelineruns"' in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line, no traceback


def test_completion_through_kubectl(
    kube: Kube, operator: OperatorProcess, namespace: str, editor: User
) -> None:
    kube.apply(namespace, _etl("etl"))
    run = editor.ok("start", "etl", "-p", "day=1").strip()

    def complete(*words: str) -> list[str]:
        env = {
            **os.environ,
            "KUBECONFIG": str(editor.kubeconfig),
            "PATH": f"{BIN}:{os.environ['PATH']}",
        }
        out = subprocess.run(
            [kube.kubectl_bin, "__complete", "sluice", *words],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert out[-1] == ":4"
        return out[:-1]

    assert complete("") == ["cancel", "graph", "list", "logs", "rerun", "start"]
    assert complete("start", "") == ["etl"]
    assert complete("start", "etl", "-p", "") == ["day="]
    assert complete("graph", "") == [run]
    wait_for("the run's snapshot", lambda: (kube.run(namespace, run).get("status") or {}).get("pipelineSpec"))
    assert complete("logs", run, "") == ["audit", "extract", "load", "report", "transform"]


def _popen(user: User, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [user.kube.kubectl_bin, "sluice", *args],
        env=user.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watching_ends_with_the_run_its_deletion_or_the_timeout(
    kube: Kube, operator: OperatorProcess, namespace: str, editor: User
) -> None:
    kube.apply(
        namespace, pipeline("slow", [task("first", duration="2s"), task("second", "first", duration="2s")])
    )
    # --timeout: exit 3, and the run goes on
    timed_out = editor.sluice("start", "slow", "--wait", "--timeout", "1")
    assert timed_out.returncode == 3, timed_out.stderr
    assert "gave up waiting after 1s" in timed_out.stderr
    run = timed_out.stdout.strip()

    # graph --watch follows it to its end: exit 0, the last drawing all green
    watched = _popen(editor, "graph", run, "--watch")
    out, err = watched.communicate(timeout=90)
    assert watched.returncode == 0, err
    drawings = out.split(f"{run}  pipeline slow  ")
    assert len(drawings) >= 3  # at least two drawings: redrawn as it ran
    last = drawings[-1]
    assert last.startswith("✔ Succeeded") and last.count("Succeeded") == 3  # the run and both tasks
    assert kube.run(namespace, run)["status"]["phase"] == "Succeeded"

    # logs -f follows a running run until it ends (kwok pods serve no log:
    # it says so for each, and still ends with the run)
    second = editor.ok("start", "slow").strip()
    following = _popen(editor, "logs", second, "-f")
    out, err = following.communicate(timeout=90)
    assert kube.run(namespace, second)["status"]["phase"] == "Succeeded"
    assert "first: cannot read the log of pod" in err and "second: cannot read the log of pod" in err
    assert following.returncode == 1

    # a run deleted while watched: one line, exit 1
    kube.apply(namespace, pipeline("slower", [task("wait", duration="120s")]))
    third = editor.ok("start", "slower").strip()
    watched = _popen(editor, "graph", third, "--watch")
    assert watched.stdout is not None
    assert watched.stdout.readline().startswith(third)  # it has drawn the run once: it is watching
    kube.custom.delete_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "pipelineruns", third)
    out, err = watched.communicate(timeout=60)
    assert watched.returncode == 1
    assert err.strip() == f"error: run {namespace}/{third} was deleted"


def test_a_viewer_reads_graphs_and_logs(
    kube: Kube, operator: OperatorProcess, namespace: str, user_roles: None, tmp_path: pathlib.Path
) -> None:
    viewer = _user(kube, namespace, "view", tmp_path)
    kube.apply(
        namespace,
        _etl("etl-broken", fail=True),
        run_body("b-1", "etl-broken", params=[{"name": "day", "value": "1"}]),
    )
    kube.wait_run(namespace, "b-1")
    assert "✘ load" in viewer.ok("graph", "b-1")
    assert viewer.ok("list", "-o", "name").split() == ["pipelinerun.sluice.dev/b-1"]
    # kwok serves no logs: the failed task's tail comes from the status, for a viewer too
    result = viewer.sluice("logs", "b-1", "load")
    assert "table sales is locked" in result.stdout, result.stderr
