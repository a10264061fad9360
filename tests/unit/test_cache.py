from typing import Any

from sluice.cache import ChildCache
from sluice.engine.observe import CreatedPod, RefusedCreate


def pod(name: str, version: str, phase: str = "Running", uid: str = "u1", run: str = "r") -> dict[str, Any]:
    labels = {"sluice.dev/run-uid": uid, "sluice.dev/run": run}
    owner = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "PipelineRun",
        "name": run,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    meta = {
        "name": name,
        "namespace": "ns",
        "labels": labels,
        "resourceVersion": version,
        "ownerReferences": [owner],
    }
    return {
        "metadata": meta,
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def names(cache: ChildCache, uid: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cache.pods_of(uid))


def test_pods_are_kept_per_run_and_an_older_event_never_replaces_a_newer_one() -> None:
    cache = ChildCache()
    assert cache.upsert_pod(pod("a-1", "5"))
    cache.upsert_pod(pod("b-1", "6"))
    cache.upsert_pod(pod("c-1", "6", uid="u2"))
    assert cache.upsert_pod(pod("a-1", "9", "Succeeded"))
    assert not cache.upsert_pod(pod("a-1", "7", "Running"))  # a stale list result
    assert [p["status"]["phase"] for p in cache.pods_of("u1") if p["metadata"]["name"] == "a-1"] == [
        "Succeeded"
    ]
    assert names(cache, "u1") == ["a-1", "b-1"]
    assert names(cache, "u2") == ["c-1"]
    assert cache.pods_of("other") == []


def test_only_changes_a_pass_reads_need_a_pass_and_conditions_are_trimmed() -> None:
    cache = ChildCache()
    cache.upsert_pod(pod("a-1", "5"))
    assert not cache.upsert_pod(pod("a-1", "6"))
    released = pod("a-1", "7")
    released["metadata"]["finalizers"] = []
    assert not cache.upsert_pod(released)
    deleting = pod("a-1", "8")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z"
    assert cache.upsert_pod(deleting)
    assert "conditions" not in cache.pods_of("u1")[0]["status"]


def test_a_run_is_dropped_with_its_last_pod_and_found_by_name_until_then() -> None:
    cache = ChildCache()
    cache.upsert_pod(pod("a-1", "5"))
    cache.upsert_pod(pod("b-1", "5"))
    cache.upsert_pod(pod("old-1", "5", uid="u0"))
    assert cache.run_uids("ns", "r") == {"u0", "u1"}
    cache.delete_pod(pod("a-1", "6"))
    assert names(cache, "u1") == ["b-1"]
    cache.delete_pod(pod("b-1", "6"))
    cache.delete_pod(pod("old-1", "6", uid="u0"))
    assert cache.run_uids("ns", "r") == set()
    assert len(cache) == 0 and not cache.pods and not cache.uids


def test_created_pods_count_until_the_watch_shows_them_and_refusals_are_forgotten_with_the_run() -> None:
    cache = ChildCache()
    cache.expect("u1", "pod-a", "a", 0)
    cache.expect("u1", "pod-b", "b", 1)
    cache.refuse("u1", RefusedCreate("pod-c", "invalid", "2026-11-24T10:00:00Z", "c", 0))
    cache.upsert_pod(pod("pod-a", "1"))
    assert cache.created_pods("u1") == [CreatedPod("pod-b", "b", 1)]
    assert [r.name for r in cache.refusals("u1")] == ["pod-c"]
    cache.forget_run("u1")
    assert cache.created_pods("u1") == []
    assert cache.refusals("u1") == []
    assert names(cache, "u1") == ["pod-a"]


def test_our_own_create_seen_before_anything_happened_needs_no_pass() -> None:
    # The pass that created the pod planned it; its first event is news only
    # when something already happened to it, or when nobody expected it (a
    # restarted operator meeting pods it did not create in this life).
    cache = ChildCache()
    cache.expect("u1", "a-1", "a")
    assert not cache.upsert_pod(pod("a-1", "5", phase="Pending") | {"status": {"phase": "Pending"}})
    assert not cache.upsert_pod(pod("a-1", "6", phase="Running"))  # started: nothing to act on
    assert cache.upsert_pod(pod("a-1", "7", phase="Succeeded"))
    cache.expect("u1", "b-1", "b")
    assert cache.upsert_pod(pod("b-1", "5", phase="Succeeded"))
    assert cache.upsert_pod(pod("c-1", "5", phase="Pending") | {"status": {"phase": "Pending"}})


def test_a_pod_is_a_runs_attempt_only_through_its_controller_reference_not_its_labels() -> None:
    cache = ChildCache()
    forged = pod("a-1", "5", "Succeeded")
    forged["metadata"]["ownerReferences"] = []
    assert not cache.upsert_pod(forged)
    merely_owned = pod("a-2", "5", "Succeeded")
    merely_owned["metadata"]["ownerReferences"][0]["controller"] = False
    assert not cache.upsert_pod(merely_owned)
    # What anyone may write where owner-reference permissions are enforced:
    # a controller reference that does not block the run's deletion.
    unblocking = pod("a-4", "5", "Succeeded")
    unblocking["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = False
    assert not cache.upsert_pod(unblocking)
    other_run = pod("a-3", "5", "Succeeded")
    other_run["metadata"]["ownerReferences"][0]["uid"] = "u9"  # labels still say u1
    assert cache.upsert_pod(other_run)
    assert cache.pods_of("u1") == [] and names(cache, "u9") == ["a-3"]


def test_a_deleted_pod_is_forgotten_from_its_tombstone() -> None:
    from sluice.controller import pod_tombstone

    cache = ChildCache()
    cache.upsert_pod(pod("a-1", "5"))
    cache.delete_pod(pod_tombstone(pod("a-1", "6")))
    assert cache.pods_of("u1") == []


def test_a_reference_counts_only_to_sluices_own_kind_and_only_for_the_run_it_names() -> None:
    cache = ChildCache()
    other_group = pod("a-1", "5", "Succeeded")
    other_group["metadata"]["ownerReferences"][0]["apiVersion"] = "tekton.dev/v1"
    assert not cache.upsert_pod(other_group)
    # Where owner-reference permissions are enforced, they are checked for the
    # run a reference names: a forger names a run they may update, with the
    # victim's UID. The victim's pass does not take that pod for its own.
    misnamed = pod("a-2", "5", "Succeeded")
    misnamed["metadata"]["ownerReferences"][0]["name"] = "mine"
    cache.upsert_pod(misnamed)
    cache.upsert_pod(pod("a-3", "5"))
    assert [p["metadata"]["name"] for p in cache.pods_of("u1", "r")] == ["a-3"]
    assert ChildCache.controlled_by(pod("a-3", "5"), "u1", "r")
    assert not ChildCache.controlled_by(misnamed, "u1", "r")


def test_a_fanned_out_instance_pod_keeps_the_labels_that_say_which_instance_it_is() -> None:
    cache = ChildCache()
    instance = pod("load-3", "5")
    instance["metadata"]["labels"].update(
        {"sluice.dev/task": "load", "sluice.dev/instance": "3", "sluice.dev/attempt": "1", "team": "data"}
    )
    cache.upsert_pod(instance)
    [kept] = cache.pods_of("u1")
    assert kept["metadata"]["labels"] == {
        "sluice.dev/run-uid": "u1",
        "sluice.dev/run": "r",
        "sluice.dev/task": "load",
        "sluice.dev/instance": "3",
        "sluice.dev/attempt": "1",
    }
