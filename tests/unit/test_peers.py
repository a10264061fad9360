from typing import Any

from sluice.reconcilers.peers import PeerIndex


def run_obj(name: str, version: str, phase: str | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "creationTimestamp": "t"},
        "spec": {"pipelineRef": {"name": "p"}, **spec},
        "status": {"phase": phase} if phase else {},
    }


def test_an_older_event_never_replaces_what_a_newer_write_showed() -> None:
    index = PeerIndex()
    index.observe(run_obj("a", "10", "Succeeded"))
    index.observe(run_obj("a", "9"))  # the watch catching up after our write
    [peer] = index.of("ns")
    assert peer.finished and peer.pipeline == "p"
    index.forget("ns", "a")
    assert index.of("ns") == () and not index.runs


def test_a_run_is_needed_while_an_unfinished_rerun_names_it() -> None:
    index = PeerIndex()
    index.observe(run_obj("orig", "1", "Failed"))
    index.observe(run_obj("again", "2", "Running", rerunOf={"name": "orig"}))
    assert index.rerun_pending("ns", "orig")
    assert not index.rerun_pending("ns", "again")
    index.observe(run_obj("again", "3", "Succeeded", rerunOf={"name": "orig"}))
    assert not index.rerun_pending("ns", "orig")
