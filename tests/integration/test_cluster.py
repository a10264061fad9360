"""The local cluster harness itself: what every other test relies on."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.builders import run as run_body
from tests.integration.browser import Browser, chromium_binary
from tests.integration.conftest import HACK, Kube, hack_env, wait_for

pytestmark = pytest.mark.integration


def test_job_with_three_completions_finishes_and_its_pods_are_garbage_collected(
    kube: Kube, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "three"},
        "spec": {
            "completions": 3,
            "parallelism": 3,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}
            },
        },
    }
    kube.apply(namespace, job)
    wait_for(
        "3 completions",
        lambda: (kube.batch.read_namespaced_job("three", namespace).status.succeeded or 0) == 3,
    )
    pods = kube.core.list_namespaced_pod(namespace, label_selector="job-name=three").items
    assert len(pods) == 3
    assert {p.status.phase for p in pods} == {"Succeeded"}
    kube.kubectl("delete", "job", "three", "-n", namespace, "--cascade=background")
    wait_for(
        "pods to be deleted",
        lambda: not kube.core.list_namespaced_pod(namespace, label_selector="job-name=three").items,
    )


def test_up_brings_back_a_component_killed_with_sigkill(kube: Kube) -> None:
    # A killed process can linger as a zombie here; `up` must see it dead
    # and restart it (keeping data), not wait for it as "already running".
    state = pathlib.Path(hack_env()["SLUICE_STATE_DIR"])
    pid = int((state / "pids" / "etcd.pid").read_text())
    os.kill(pid, signal.SIGKILL)

    def dead() -> bool:
        # SIGKILL is delivered asynchronously: until the kernel has ended the
        # process it still reads as running, and `up` would (rightly) keep it.
        try:
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state in ("Z", "X")

    wait_for("the killed etcd to be dead", dead)
    done = subprocess.run([str(HACK), "up"], env=hack_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recovering: etcd" in done.stderr
    assert int((state / "pids" / "etcd.pid").read_text()) != pid
    wait_for("the API server to serve again", lambda: kube.core.list_namespace(limit=1).items)


def test_restart_replaces_one_component_and_the_cluster_serves_again(kube: Kube) -> None:
    state = pathlib.Path(hack_env()["SLUICE_STATE_DIR"])
    pid = int((state / "pids" / "kube-apiserver.pid").read_text())
    done = subprocess.run(
        [str(HACK), "restart", "kube-apiserver"], env=hack_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int((state / "pids" / "kube-apiserver.pid").read_text()) != pid
    wait_for("the API server to serve again", lambda: kube.core.list_namespace(limit=1).items)


def _real_node_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "real-node mode needs root"
    missing = [b for b in ("containerd", "runc", "dockerd", "debootstrap", "iptables") if not shutil.which(b)]
    if missing:
        return f"real-node mode needs {', '.join(missing)} (hack/install-deps)"
    if subprocess.run(["ip", "link", "show", "sluice0"], capture_output=True, check=False).returncode == 0:
        return "a real-node cluster (the demo's?) is already up on this host: hack/cluster down first"
    return None


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second, real-node cluster beside the kwok one (own state dir and ports)."""
    reason = _real_node_prerequisites()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("real-cluster")
    env = {
        **os.environ,
        "SLUICE_STATE_DIR": str(state),
        "SLUICE_APISERVER_PORT": "17443",
        "SLUICE_ETCD_PORT": "13379",
    }
    subprocess.run([str(HACK), "up", "--nodes", "real"], env=env, check=True)
    try:
        yield str(state / "kubeconfig")
    finally:
        subprocess.run([str(HACK), "down"], env=env, check=False)


def test_real_node_runs_a_container_and_serves_its_logs(real_cluster: str, kubectl_bin: str) -> None:
    subprocess.run([str(HACK.parent / "base-image")], check=True)
    subprocess.run(
        [str(HACK), "load-image", "sluice.local/debian:bookworm"],
        check=True,
        env={**os.environ, "SLUICE_STATE_DIR": str(pathlib.Path(real_cluster).parent)},
    )
    api = config.new_client_from_config(config_file=real_cluster)
    core = client.CoreV1Api(api)
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == ["sluice-node"]
    assert any(c.type == "Ready" and c.status == "True" for c in nodes[0].status.conditions)
    name = f"hi-{uuid.uuid4().hex[:6]}"
    run = [kubectl_bin, "--kubeconfig", real_cluster]
    subprocess.run(
        [
            *run,
            "run",
            name,
            "--image=sluice.local/debian:bookworm",
            "--restart=Never",
            "--",
            "sh",
            "-c",
            "echo hi",
        ],
        check=True,
    )
    wait_for(
        "the pod to succeed",
        lambda: core.read_namespaced_pod(name, "default").status.phase == "Succeeded",
        timeout=120,
    )
    logs = subprocess.run([*run, "logs", name], check=True, capture_output=True, text=True).stdout
    assert logs == "hi\n"
    versions = dict(
        line.split("=", 1) for line in (HACK.parent / "versions.env").read_text().splitlines() if "=" in line
    )
    version = subprocess.run(
        [*run, "version", "-o", "yaml"], check=True, capture_output=True, text=True
    ).stdout
    assert yaml.safe_load(version)["serverVersion"]["gitVersion"] == versions["K8S_VERSION"]


def test_operator_installed_with_helm_runs_a_pipeline_on_the_real_node(
    real_cluster: str, kubectl_bin: str
) -> None:
    """The shipped path: images built offline, the chart installed, the
    operator in a pod, task containers really running and passing a result."""
    root = HACK.parent.parent
    env = {**os.environ, "SLUICE_STATE_DIR": str(pathlib.Path(real_cluster).parent)}
    subprocess.run([str(HACK.parent / "build-images")], check=True, cwd=root)
    images = dict(line.split("=", 1) for line in (root / "build" / "images.env").read_text().split())
    subprocess.run(
        [str(HACK), "load-image", images["OPERATOR_IMAGE"], "sluice.local/debian:bookworm"],
        check=True,
        env=env,
    )
    helm = next(iter(sorted(pathlib.Path(kubectl_bin).parent.parent.parent.glob("helm-*/bin/helm"))))
    repository, tag = images["OPERATOR_IMAGE"].rsplit(":", 1)
    subprocess.run(
        [
            str(helm),
            "--kubeconfig",
            real_cluster,
            "upgrade",
            "--install",
            "sluice",
            str(root / "helm/sluice"),
            "-n",
            "sluice-system",
            "--create-namespace",
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "triggers.enabled=true",
            "--set",
            "pendingDeadlineSeconds=20",
            "--set",
            "dashboard.enabled=true",
        ],
        check=True,
    )
    kubectl = [kubectl_bin, "--kubeconfig", real_cluster]
    for deployment in ("sluice", "sluice-triggers", "sluice-dashboard"):
        subprocess.run(
            [
                *kubectl,
                "-n",
                "sluice-system",
                "rollout",
                "status",
                f"deployment/{deployment}",
                "--timeout=180s",
            ],
            check=True,
        )
    _the_webhook_refuses_a_cycle_through_its_service(kubectl)
    image = "sluice.local/debian:bookworm"
    # A param a naive script template would run as code.
    hostile = 'x"; echo INJECTED; $(id) #'
    manifests = [
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "real"},
            "spec": {
                "params": [{"name": "who"}],
                # Scripts with a #! line are written to an emptyDir: a read-only root is fine.
                "defaults": {"securityContext": {"readOnlyRootFilesystem": True}},
                "tasks": [
                    {
                        "name": "count",
                        "image": image,
                        "results": [{"name": "rows"}, {"name": "regions"}],
                        "command": [
                            "sh",
                            "-c",
                            "echo counting; "
                            'printf \'rows=7\\nregions=["eu","us"]\\n\' > /dev/termination-log',
                        ],
                    },
                    {
                        "name": "show",
                        "image": image,
                        "dependsOn": ["count"],
                        "command": ["sh", "-c", "echo got $(tasks.count.results.rows) rows"],
                    },
                    {
                        "name": "per-region",
                        "image": image,
                        "dependsOn": ["count"],
                        "matrix": {"axes": [{"name": "region", "from": "$(tasks.count.results.regions)"}]},
                        "results": [{"name": "seen"}],
                        "script": "#!/bin/bash\nset -eu\n"
                        'echo "region $(matrix.region) of $(params.who)"\n'
                        'echo "seen=$(matrix.region)" > /dev/termination-log\n',
                    },
                    {
                        "name": "gather",
                        "image": image,
                        "dependsOn": ["per-region"],
                        "script": "echo gathered $(tasks.per-region.results.seen)\n",
                        "updatesAssets": ["real.regions"],
                    },
                    {
                        # Cluster DNS, as pods on any cluster have it.
                        "name": "dns",
                        "image": image,
                        "command": ["getent", "hosts", "kubernetes.default.svc.cluster.local"],
                    },
                ],
            },
        },
        {
            # Scheduled on the asset "gather" updates: runs once real-1's gather succeeded.
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "regions-report"},
            "spec": {
                "schedule": {"onAssets": ["real.regions"]},
                "tasks": [
                    {
                        "name": "report",
                        "image": image,
                        "script": "echo regions updated by $(context.triggeredBy.real.regions.run)"
                        " for $(context.dataIntervalStart)\n",
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook"},
            "stringData": {"secret": "a-real-node-signing-key"},
        },
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": "hook"},
            "spec": {
                "pipelineRef": {"name": "regions-report"},
                "secretRef": {"name": "hook"},
                "idempotencyKey": "$(body.id)",
            },
        },
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "PipelineRun",
            "metadata": {"name": "real-1"},
            "spec": {
                "pipelineRef": {"name": "real"},
                "params": [{"name": "who", "value": hostile}],
                "dataInterval": {"start": "2026-11-24T00:00:00Z", "end": "2026-11-25T00:00:00Z"},
            },
        },
    ]
    _apply(kubectl, *manifests)
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=real_cluster))

    def finished() -> dict | None:
        obj = custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", "default", "pipelineruns", "real-1"
        )
        return obj if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    obj = wait_for("the run on the real node", finished, timeout=180)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    tasks = {t["name"]: t for t in obj["status"]["tasks"]}

    def logs_of(pod: str) -> str:
        return subprocess.run(
            [*kubectl, "logs", "-n", "default", pod], check=True, capture_output=True, text=True
        ).stdout

    assert logs_of(tasks["show"]["podName"]) == "got 7 rows\n"
    instances = tasks["per-region"]["instances"]
    assert [logs_of(i["podName"]) for i in instances] == [
        f"region eu of {hostile}\n",
        f"region us of {hostile}\n",
    ]
    assert logs_of(tasks["gather"]["podName"]) == 'gathered ["eu","us"]\n'
    assert logs_of(tasks["dns"]["podName"]).split()[0] == "10.96.0.1"

    _plugin_reads_the_logs(real_cluster, kubectl_bin, hostile)
    _the_dashboard_streams_a_running_tasks_log(kubectl, image)

    def run_done(name: str) -> dict | None:
        try:
            found = custom.get_namespaced_custom_object(
                "sluice.dev", "v1alpha1", "default", "pipelineruns", name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found if (found.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    report = wait_for(
        "the asset-triggered report run", lambda: run_done("regions-report-asset-1"), timeout=120
    )
    assert report["status"]["phase"] == "Succeeded", report["status"]
    assert logs_of(report["status"]["tasks"][0]["podName"]) == (
        "regions updated by real-1 for 2026-11-24T00:00:00Z\n"
    )

    # A signed event, sent from a pod to the triggers Service by its cluster DNS name.
    body = json.dumps({"id": "event-1"})
    signature = "sha256=" + hmac.new(b"a-real-node-signing-key", body.encode(), hashlib.sha256).hexdigest()
    post = (
        "import sys, urllib.request as u; r = u.urlopen(u.Request("
        "'http://sluice-triggers.sluice-system.svc/v1/namespaces/default/triggers/hook', "
        "data=sys.argv[1].encode(), method='POST', "
        "headers={'Content-Type': 'application/json', 'X-Sluice-Signature-256': sys.argv[2]}), timeout=30); "
        "print(r.status, r.read().decode())"
    )
    sent = subprocess.run(
        [
            *kubectl,
            "exec",
            "-n",
            "sluice-system",
            "deployment/sluice",
            "--",
            "/opt/sluice/bin/python",
            "-c",
            post,
            body,
            signature,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    status, answer = sent.split(" ", 1)
    assert status == "202", sent
    triggered = wait_for("the triggered run", lambda: run_done(json.loads(answer)["run"]), timeout=120)
    assert triggered["status"]["phase"] == "Succeeded", triggered["status"]

    _an_unpullable_image_shows_then_fails(kubectl, custom, run_done)


def _apply(kubectl: list[str], *documents: dict[str, Any]) -> None:
    """``kubectl apply`` of ``documents`` into the default namespace, as the admin."""
    subprocess.run(
        [*kubectl, "apply", "-n", "default", "-f", "-"],
        input=yaml.safe_dump_all(documents),
        text=True,
        check=True,
    )


def _the_webhook_refuses_a_cycle_through_its_service(kubectl: list[str]) -> None:
    """As installed (failurePolicy Ignore): the API server reaches the
    operator's webhook through its Service, trusting the CA the operator
    made; an unreachable webhook would let the cycle in."""
    cycle = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "cycle"},
        "spec": {
            "tasks": [
                {"name": "a", "image": "x", "dependsOn": ["b"]},
                {"name": "b", "image": "x", "dependsOn": ["a"]},
            ]
        },
    }

    def refused() -> str | None:
        result = subprocess.run(
            [*kubectl, "apply", "-n", "default", "-f", "-"],
            input=yaml.safe_dump(cycle),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:  # accepted while the CA was not in place yet: try again
            subprocess.run([*kubectl, "delete", "-n", "default", "pipeline/cycle"], check=True)
            return None
        return result.stderr

    message = wait_for("the webhook to refuse a cycle", refused, timeout=60, interval=1)
    assert "denied the request: Pipeline is invalid: CycleDetected: tasks form a cycle" in message


def _the_dashboard_streams_a_running_tasks_log(kubectl: list[str], image: str) -> None:
    """The dashboard as installed (its Service, reached by port-forward as
    documented), in headless Chromium: a task's log page shows its lines
    while the container still runs, then says the container ended; the run
    page of real-1 draws every task Succeeded."""
    binary = chromium_binary()
    assert binary, "chromium is not installed: run hack/install-deps"
    ticker = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "ticker"},
        "spec": {
            "tasks": [
                {
                    "name": "tick",
                    "image": image,
                    "command": ["sh", "-c", "for i in $(seq 1 20); do echo tick $i; sleep 0.5; done"],
                }
            ]
        },
    }
    _apply(kubectl, ticker, run_body("ticker-1", "ticker"))
    forward = subprocess.Popen(
        [*kubectl, "-n", "sluice-system", "port-forward", "svc/sluice-dashboard", "0:80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    browser = Browser(binary)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        port = int(line.split("127.0.0.1:")[1].split()[0])
        browser.goto(f"http://127.0.0.1:{port}/ns/default/runs/ticker-1/tasks/tick/log")
        text = "document.getElementById('log').textContent"
        browser.wait("the first lines", f"{text}.includes('tick 2')", timeout=120)
        assert "tick 20" not in browser.evaluate(text)  # shown while it runs, not after
        browser.wait("the last line", f"{text}.includes('tick 20')", timeout=60)
        browser.wait(
            "the end", "document.getElementById('log-status').textContent.includes('container ended')"
        )
        lines = browser.evaluate(text).splitlines()
        assert lines == [f"tick {i}" for i in range(1, 21)]
        logs = pathlib.Path(os.environ.get("SLUICE_TEST_LOGS") or tempfile.gettempdir())
        browser.screenshot(logs / "screenshots" / "log-page.png")
        # the run page of the pipeline that ran in real containers: every task green
        browser.goto(f"http://127.0.0.1:{port}/ns/default/runs/real-1")
        states = browser.evaluate(
            "[...document.querySelectorAll('svg.dag g.task')].map(g => g.dataset.state)"
        )
        assert states and set(states) == {"Succeeded"}, states
        browser.screenshot(logs / "screenshots" / "real-run-page.png")
    finally:
        browser.close()
        forward.terminate()


def _plugin_reads_the_logs(real_cluster: str, kubectl_bin: str, hostile: str) -> None:
    """`kubectl sluice logs` finds real-1's logs by task, without pod names,
    read and followed (-f ends with the run); `graph` draws it."""
    bins = f"{pathlib.Path(sys.executable).parent}:{pathlib.Path(kubectl_bin).parent}"
    plugin_env = {**os.environ, "KUBECONFIG": real_cluster, "PATH": f"{bins}:{os.environ['PATH']}"}

    def sluice(*args: str) -> str:
        return subprocess.run(
            [kubectl_bin, "sluice", "-n", "default", *args],
            env=plugin_env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    assert sluice("logs", "real-1", "show") == "got 7 rows\n"
    fanned = [f"per-region[{i}] | region {r} of {hostile}" for i, r in enumerate(("eu", "us"))]
    assert sluice("logs", "real-1", "per-region").splitlines() == fanned
    assert sorted(sluice("logs", "real-1", "per-region", "-f").splitlines()) == fanned
    graph = sluice("graph", "real-1")
    assert graph.splitlines()[0].startswith("real-1  pipeline real  ✔ Succeeded")


def _an_unpullable_image_shows_then_fails(
    kubectl: list[str], custom: client.CustomObjectsApi, run_done: Callable[[str], dict | None]
) -> None:
    # An image the node cannot pull: the run says so, then the attempt fails
    # after the pending deadline (20 s here).
    unpullable = [
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "unpullable"},
            "spec": {"tasks": [{"name": "pull", "image": "sluice.local/no-such-image:1"}]},
        },
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "PipelineRun",
            "metadata": {"name": "unpullable-1"},
            "spec": {"pipelineRef": {"name": "unpullable"}},
        },
    ]
    _apply(kubectl, *unpullable)

    def pull_reason() -> str | None:
        found = custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", "default", "pipelineruns", "unpullable-1"
        )
        tasks = (found.get("status") or {}).get("tasks") or [{}]
        reason = tasks[0].get("reason")
        return reason if reason in ("ErrImagePull", "ImagePullBackOff") else None

    wait_for("the run to show the image pull failure", pull_reason, timeout=60)
    failed = wait_for("the attempt to fail after the deadline", lambda: run_done("unpullable-1"), timeout=120)
    [pull] = failed["status"]["tasks"]
    assert failed["status"]["phase"] == "Failed"
    assert pull["reason"] in ("ErrImagePull", "ImagePullBackOff"), pull
    assert "pending deadline of 20s" in pull["message"]
