"""The read-only dashboard in a real headless Chromium (Debian's chromium),
against a real API server, the dashboard running under the chart's own
ServiceAccount and read-only RBAC: pages load, the DAG shows each task's
state for a run with a failed and a skipped task, pages follow a run live
without a reload, user-written text is shown and never run, and a task whose
pod is gone shows the log tail its run's status keeps. Screenshots of the run
page are saved with the test logs ($SLUICE_TEST_LOGS/screenshots).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.builders import pipeline, run, task
from tests.integration.browser import Browser, chromium_binary
from tests.integration.conftest import Kube, OperatorProcess, free_port, wait_for
from tests.integration.installed import Installation, install_component_rbac
from tests.integration.servers import ChildServer

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]


class DashboardProcess(ChildServer):
    """sluice-dashboard as a child process, with the chart's identity."""

    def __init__(self, installed: Installation, log_dir: pathlib.Path) -> None:
        port = free_port()
        super().__init__(
            "sluice.dashboard", installed, log_dir / "dashboard.log", port, SLUICE_DASHBOARD_PORT=str(port)
        )


@pytest.fixture(scope="module")
def dashboard(
    kube: Kube,
    helm: str,
    installation: Installation,
    operator_logs: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DashboardProcess]:
    installed = install_component_rbac(
        kube,
        helm,
        installation.release,
        installation.namespace,
        tmp_path_factory.mktemp("dashboard"),
        "dashboard",
    )
    verbs = {
        v for d in installed.documents if d["kind"] == "ClusterRole" for r in d["rules"] for v in r["verbs"]
    }
    assert verbs <= {"get", "list", "watch"}, verbs  # read-only, as installed
    process = DashboardProcess(installed, operator_logs)
    yield process
    process.stop()
    installed.uninstall(kube)


@pytest.fixture
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    assert binary, "chromium is not installed: run hack/install-deps"
    opened = Browser(binary)
    yield opened
    opened.close()


def _screenshots(operator_logs: pathlib.Path) -> pathlib.Path:
    return operator_logs / "screenshots"


STATES = (
    "Object.fromEntries([...document.querySelectorAll('svg.dag g.task')]"
    ".map(g => [g.dataset.task, g.dataset.state]))"
)


def test_the_run_page_draws_failed_and_skipped_tasks_and_their_details(
    kube: Kube,
    operator: OperatorProcess,
    namespace: str,
    dashboard: DashboardProcess,
    browser: Browser,
    operator_logs: pathlib.Path,
) -> None:
    failing = task(
        "load", "transform", fail=True, annotations={"sim.sluice.dev/message": "table sales is locked"}
    )
    kube.apply(
        namespace,
        pipeline(
            "daily-sales",
            [
                task("extract", duration="1s"),
                task("transform", "extract"),
                failing,
                task("report", "load"),
                task("audit", "extract"),
            ],
        ),
        run("daily-sales-1", "daily-sales"),
    )
    kube.wait_run(namespace, "daily-sales-1")
    browser.goto(f"{dashboard.url}/ns/{namespace}/runs/daily-sales-1")
    assert browser.evaluate(STATES) == {
        "extract": "Succeeded",
        "transform": "Succeeded",
        "load": "Failed",
        "report": "Skipped",
        "audit": "Succeeded",
    }
    assert browser.evaluate("document.querySelector('#summary').dataset.phase") == "Failed"
    # drawn in dependency order: report is right of load, which is right of transform
    x = "(t => document.querySelector(`g.task[data-task=${t}] rect`).getAttribute('x') * 1)"
    assert browser.evaluate(
        f"{x}('extract') < {x}('transform') && {x}('transform') < {x}('load') && {x}('load') < {x}('report')"
    )
    assert browser.evaluate("document.querySelectorAll('svg.dag path').length") == 4  # one per dependsOn edge
    assert (
        browser.evaluate("document.querySelectorAll('svg.gantt g.bar').length") == 4
    )  # report never started
    # the Events table (the operator's, read with the dashboard's own RBAC)
    events = (
        "[...document.querySelectorAll('#events tr')].slice(1)"
        ".map(r => [...r.cells].slice(1, 2).map(c => c.innerText)[0])"
    )
    browser.wait("the run's Events", f"({events}).includes('TaskFailed')")
    assert {"Started", "TaskFailed", "Failed"} <= set(browser.evaluate(events))
    browser.screenshot(_screenshots(operator_logs) / "run-page.png")

    # a click on a task opens its details
    browser.evaluate(
        "document.querySelector('g.task[data-task=load]').parentElement"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
    )
    browser.wait(
        "the task's details",
        "document.querySelector('#details') && document.querySelector('#details').dataset.task === 'load'",
    )
    assert "table sales is locked" in browser.evaluate("document.querySelector('#details').innerText")
    browser.screenshot(_screenshots(operator_logs) / "run-page-task.png")

    # the overview: the pipeline, its run as a red square linking to the run
    browser.goto(f"{dashboard.url}/?ns={namespace}")
    squares = browser.evaluate(
        "[...document.querySelectorAll('tr[data-pipeline=daily-sales] .sq')].map(s => s.dataset.phase)"
    )
    assert squares == ["Failed"]
    assert browser.evaluate(
        "document.querySelector('tr[data-pipeline=daily-sales] a[title]').getAttribute('href')"
    ) == (f"/ns/{namespace}/runs/daily-sales-1")


def test_pages_follow_a_run_live_without_a_reload(
    kube: Kube, operator: OperatorProcess, namespace: str, dashboard: DashboardProcess, browser: Browser
) -> None:
    kube.apply(
        namespace, pipeline("slow", [task("first", duration="4s"), task("second", "first", duration="2s")])
    )
    kube.apply(namespace, run("slow-1", "slow"))
    wait_for(
        "the run to start",
        lambda: (kube.run(namespace, "slow-1").get("status") or {}).get("phase") == "Running",
    )
    browser.goto(f"{dashboard.url}/ns/{namespace}/runs/slow-1")
    browser.evaluate("window.loadedOnce = true")
    browser.wait("the live badge", "document.getElementById('live-badge').textContent === 'live'")
    assert browser.evaluate(STATES)["second"] in {"Pending", "Running"}
    browser.wait("the second task to run", f"({STATES}).second === 'Running'")
    browser.wait("the run to succeed", "document.querySelector('#summary').dataset.phase === 'Succeeded'")
    assert browser.evaluate(STATES) == {"first": "Succeeded", "second": "Succeeded"}
    assert browser.evaluate("window.loadedOnce") is True  # the same page: updated, not reloaded

    # a new run shows up on the overview by itself
    browser.goto(f"{dashboard.url}/?ns={namespace}")
    browser.evaluate("window.loadedOnce = true")
    kube.apply(namespace, run("slow-2", "slow"))
    browser.wait(
        "the second run's square",
        "document.querySelectorAll('tr[data-pipeline=slow] .sq').length === 2",
    )
    assert browser.evaluate("window.loadedOnce") is True


def test_user_text_is_shown_not_run_and_a_gone_pods_log_comes_from_the_status(
    kube: Kube, operator: OperatorProcess, namespace: str, dashboard: DashboardProcess, browser: Browser
) -> None:
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    failing = task("load", fail=True, annotations={"sim.sluice.dev/message": f"boom {hostile}"})
    kube.apply(
        namespace,
        pipeline("p", [failing], params=[{"name": "note"}]),
        run("p-1", "p", params=[{"name": "note", "value": hostile}]),
    )
    kube.wait_run(namespace, "p-1")
    browser.goto(f"{dashboard.url}/ns/{namespace}/runs/p-1?task=load")
    text = browser.evaluate("document.body.innerText")
    assert hostile in text  # shown as written
    assert browser.evaluate("window.pwned") is None  # and never run
    assert browser.evaluate("document.querySelectorAll('main img, main script').length") == 0

    pod = next(p.metadata.name for p in kube.pods(namespace, "p-1"))
    kube.core.delete_namespaced_pod(pod, namespace)
    wait_for(f"pod {pod} to go", lambda: not kube.pods(namespace, "p-1"))
    browser.goto(f"{dashboard.url}/ns/{namespace}/runs/p-1/tasks/load/log")
    browser.wait("the log's end", "document.getElementById('log-status').textContent.includes('is gone')")
    assert f"boom {hostile}" in browser.evaluate("document.getElementById('log').textContent")
    assert browser.evaluate("window.pwned") is None
