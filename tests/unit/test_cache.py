from typing import Any

from sluice.cache import ChildCache
from sluice.engine.observe import CreatedJob, RefusedCreate


def pod(name: str, job: str, version: str, phase: str = "Running") -> dict[str, Any]:
    labels = {"sluice.dev/run-uid": "u1", "batch.kubernetes.io/job-name": job}
    return {
        "metadata": {"name": name, "labels": labels, "resourceVersion": version},
        "status": {"phase": phase},
    }


def pods_of(cache: ChildCache, uid: str, job: str) -> list[dict[str, Any]]:
    return list((cache.pods_by_job(uid).get(job) or {}).values())


def test_pods_are_read_per_job_and_an_older_event_never_replaces_a_newer_one() -> None:
    cache = ChildCache()
    assert cache.upsert_pod(pod("a-1", "job-a", "5"))
    cache.upsert_pod(pod("b-1", "job-b", "6"))
    assert cache.upsert_pod(pod("a-1", "job-a", "9", "Succeeded"))
    cache.upsert_pod(pod("a-1", "job-a", "7", "Running"))  # a stale list result
    assert [p["status"]["phase"] for p in pods_of(cache, "u1", "job-a")] == ["Succeeded"]
    assert [p["metadata"]["name"] for p in pods_of(cache, "u1", "job-b")] == ["b-1"]
    assert pods_of(cache, "u1", "job-c") == []
    assert pods_of(cache, "other", "job-a") == []


def test_an_unchanged_pod_does_not_wake_its_run_and_deleted_pods_are_gone() -> None:
    cache = ChildCache()
    cache.upsert_pod(pod("a-1", "job-a", "5"))
    assert not cache.upsert_pod(pod("a-1", "job-a", "6"))
    cache.delete_pod(pod("a-1", "job-a", "7"))
    assert pods_of(cache, "u1", "job-a") == []


def test_created_jobs_count_until_the_watch_shows_them_and_refusals_are_forgotten_with_the_run() -> None:
    cache = ChildCache()
    cache.expect("u1", "job-a", "a", 0)
    cache.expect("u1", "job-b", "b", 1)
    cache.refuse("u1", RefusedCreate("job-c", "invalid", "2026-11-24T10:00:00Z", "c", 0))
    cache.upsert_job({"metadata": {"name": "job-a", "labels": {"sluice.dev/run-uid": "u1"}}, "status": {}})
    assert cache.created_jobs("u1") == [CreatedJob("job-b", "b", 1)]
    assert [r.name for r in cache.refusals("u1")] == ["job-c"]
    cache.forget_run("u1")
    assert cache.created_jobs("u1") == []
    assert cache.refusals("u1") == []
