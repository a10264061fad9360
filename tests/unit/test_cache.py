from typing import Any

from sluice.cache import ChildCache


def pod(name: str, job: str, version: str, phase: str = "Running") -> dict[str, Any]:
    labels = {"sluice.dev/run-uid": "u1", "batch.kubernetes.io/job-name": job}
    return {
        "metadata": {"name": name, "labels": labels, "resourceVersion": version},
        "status": {"phase": phase},
    }


def test_pods_are_read_per_job_and_an_older_event_never_replaces_a_newer_one() -> None:
    cache = ChildCache()
    assert cache.upsert_pod(pod("a-1", "job-a", "5"))
    cache.upsert_pod(pod("b-1", "job-b", "6"))
    assert cache.upsert_pod(pod("a-1", "job-a", "9", "Succeeded"))
    cache.upsert_pod(pod("a-1", "job-a", "7", "Running"))  # a stale list result
    assert [p["status"]["phase"] for p in cache.pods_of_job("u1", "job-a")] == ["Succeeded"]
    assert [p["metadata"]["name"] for p in cache.pods_of_job("u1", "job-b")] == ["b-1"]
    assert cache.pods_of_job("u1", "job-c") == []
    assert cache.pods_of_job("other", "job-a") == []


def test_an_unchanged_pod_does_not_wake_its_run_and_deleted_pods_are_gone() -> None:
    cache = ChildCache()
    cache.upsert_pod(pod("a-1", "job-a", "5"))
    assert not cache.upsert_pod(pod("a-1", "job-a", "6"))
    cache.delete_pod(pod("a-1", "job-a", "7"))
    assert cache.pods_of_job("u1", "job-a") == []
