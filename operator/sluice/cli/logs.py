"""`kubectl sluice logs RUN [TASK]`: task logs without hunting for pod names.

Without ``-f`` it prints what each chosen pod has logged. With ``-f`` it
follows every chosen pod whose container starts (a retry's new pod too)
until the run ends. A pod that is gone is said so, with the log tail the
run's status keeps. Several logs at once are prefixed with their task.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from sluice.api import labels
from sluice.cli.connection import Session, UsageError
from sluice.cli.terminal import Terminal
from sluice.cli.watching import RunDeleted, follow_pods, follow_run
from sluice.views.log_sources import LogSource, TaskPod, log_sources, task_pods
from sluice.views.run_view import run_view

CONTAINER = "task"
# How long, after the run ended, the logs still streaming may take to end.
FOLLOWER_GRACE_SECONDS = 10.0


class _Printer:
    """Lines from several threads, whole and prefixed when there are several logs."""

    def __init__(self, term: Terminal, prefixed: bool) -> None:
        self._term = term
        self._prefixed = prefixed
        self._lock = threading.Lock()

    def line(self, label: str, text: str) -> None:
        prefix = self._term.painter.dim(f"{label} | ") if self._prefixed else ""
        with self._lock:
            self._term.out.write(f"{prefix}{text}\n")
            self._term.out.flush()

    def note(self, text: str) -> None:
        with self._lock:
            self._term.say(text)


def _lines(session: Session, namespace: str, pod: str, follow: bool) -> Iterator[str]:
    """The pod's log line by line, as it comes with ``follow``; a last line
    without a newline (a message printed just before an exit) is kept.
    """
    response = session.core.read_namespaced_pod_log(
        pod, namespace, container=CONTAINER, follow=follow, _preload_content=False
    )
    try:
        pending = b""
        for chunk in response.stream(4096):
            pending += chunk
            *whole, pending = pending.split(b"\n")
            yield from (line.decode(errors="replace") for line in whole)
        if pending:
            yield pending.decode(errors="replace")
    finally:
        response.release_conn()


def _show(
    session: Session, namespace: str, printer: _Printer, label: str, pod: TaskPod, follow: bool
) -> bool:
    """Print one pod's log; False if it could not be read."""
    try:
        for text in _lines(session, namespace, pod.name, follow):
            printer.line(label, text)
    except ApiException as error:
        detail = error.reason or ""
        try:
            detail = json.loads(error.body or "{}").get("message") or detail
        except ValueError:
            pass
        printer.note(f"{label}: cannot read the log of pod {pod.name}: {detail}")
        return False
    except (HTTPError, OSError) as error:  # the connection broke mid-stream
        printer.note(f"{label}: the log of pod {pod.name} was cut off: {error}")
        return False
    return True


def _show_missing(printer: _Printer, source: LogSource) -> None:
    printer.note(source.note or f"{source.label}: no log")
    for text in (source.kept or "").splitlines():
        printer.line(source.label, text)


def _pods(session: Session, namespace: str, uid: str) -> list[dict[str, Any]]:
    response = session.core.list_namespaced_pod(
        namespace, label_selector=f"{labels.RUN_UID}={uid}", _preload_content=False
    )
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def logs(
    session: Session,
    term: Terminal,
    run_name: str,
    task: str | None,
    attempt: int | None,
    instance: int | None,
    follow: bool,
) -> int:
    namespace = session.namespace
    run = session.get("pipelineruns", run_name)
    view = run_view(run)
    pods = task_pods(_pods(session, namespace, view.uid))
    try:
        sources = log_sources(view, pods, task, attempt, instance)
    except LookupError as error:
        raise UsageError(str(error)) from error
    chosen = view.task(task) if task is not None else None
    many = task is None or len(sources) > 1 or (chosen is not None and chosen.fanned_out and instance is None)
    printer = _Printer(term, prefixed=many)
    if follow and not view.finished_for_good:
        for source in sources:
            if source.pod is None and source.kept:
                _show_missing(printer, source)
        return _follow(session, printer, run_name, view.uid, task, attempt, instance)
    ok = True
    if not sources:
        printer.note(f"run {run_name}: no task has a log yet")
    for source in sources:
        if source.pod is None:
            _show_missing(printer, source)
        elif not source.pod.started:
            printer.note(
                f"{source.label}: pod {source.pod.name} has not started its container ({source.pod.phase})"
            )
        elif not _show(session, namespace, printer, source.label, source.pod, follow=False):
            ok = False
            if source.kept:  # the node cannot serve it, but the run's status kept its tail
                _show_missing(
                    printer,
                    LogSource(source.label, None, "the run's status keeps its last lines:", source.kept),
                )
    return 0 if ok else 1


def _wanted(pod: TaskPod, task: str | None, attempt: int | None, instance: int | None) -> bool:
    return (
        (task is None or pod.task == task)
        and (attempt is None or pod.attempt == attempt)
        and (instance is None or pod.instance == instance)
    )


def _follow(
    session: Session,
    printer: _Printer,
    run_name: str,
    uid: str,
    task: str | None,
    attempt: int | None,
    instance: int | None,
) -> int:
    namespace = session.namespace
    ended = threading.Event()
    followers: dict[str, threading.Thread] = {}
    failures: list[str] = []

    def watch_run() -> None:
        try:
            for obj in follow_run(session, namespace, run_name):
                if run_view(obj).finished_for_good:
                    break
        except RunDeleted as error:
            printer.note(str(error))
            failures.append(run_name)
        except Exception as error:  # whatever broke, following must end, not hang
            printer.note(f"stopped following run {run_name}: {error}")
            failures.append(run_name)
        finally:
            ended.set()

    def start(pod: TaskPod) -> None:
        label = pod.task if pod.instance is None else f"{pod.task}[{pod.instance}]"
        if pod.attempt > 1:
            label += f" #{pod.attempt}"

        def run() -> None:
            try:
                shown = _show(session, namespace, printer, label, pod, follow=True)
            except Exception as error:  # one line, never a thread's traceback
                printer.note(f"{label}: {error}")
                shown = False
            if not shown:
                failures.append(pod.name)

        followers[pod.name] = threading.Thread(target=run, daemon=True)
        followers[pod.name].start()

    watcher = threading.Thread(target=watch_run, daemon=True)
    watcher.start()
    selector = f"{labels.RUN_UID}={uid}"
    for raw in follow_pods(session, namespace, selector, stop=ended.is_set):
        for pod in task_pods([raw]):
            if pod.started and pod.name not in followers and _wanted(pod, task, attempt, instance):
                start(pod)
    # A pod that started and ended between the last pod event and the run's
    # end is still shown.
    for pod in task_pods(_pods(session, namespace, uid)):
        if pod.started and pod.name not in followers and _wanted(pod, task, attempt, instance):
            start(pod)
    # Streams end with their containers; one cut off without a word is given
    # a little while, not forever.
    deadline = time.monotonic() + FOLLOWER_GRACE_SECONDS
    for thread in list(followers.values()):
        thread.join(max(deadline - time.monotonic(), 0))
    return 1 if failures else 0
