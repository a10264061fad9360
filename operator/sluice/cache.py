"""In-memory view of the Jobs and pods that runs own, fed by watch events.

Why a cache: the reconciler must know every task's Job on every pass;
listing them from the API each time would cost a request per wake-up. Objects
are trimmed to what the reconciler reads (no managedFields, no pod spec), so
memory stays proportional to the number of tasks, not to object size.

"Expectations" cover the gap between creating a Job and its watch event
arriving: a Job we just created counts as existing, so a reconcile in that
gap neither re-creates it nor reports the task as not started.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sluice import labels

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
EXPECTATION_TTL = 60.0


def _resource_version(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def trim_job(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "labels": meta.get("labels") or {},
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "spec": {"activeDeadlineSeconds": (job.get("spec") or {}).get("activeDeadlineSeconds")},
        "status": job.get("status") or {},
    }


def trim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    status = pod.get("status") or {}
    return {
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {},
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "status": {
            "phase": status.get("phase"),
            "containerStatuses": [
                {"name": c.get("name"), "state": c.get("state") or {}}
                for c in status.get("containerStatuses") or ()
            ],
        },
    }


class ChildCache:
    """Jobs and pods grouped by the UID of the run that owns them."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.pods: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        # run uid -> job name -> (task, attempt, monotonic time of the create)
        self.expected: dict[str, dict[str, tuple[str, int, float]]] = defaultdict(dict)

    @staticmethod
    def run_uid(obj: dict[str, Any]) -> str | None:
        uid: str | None = (obj["metadata"].get("labels") or {}).get(labels.RUN_UID)
        return uid

    def _upsert(self, store: dict[str, dict[str, dict[str, Any]]], uid: str, obj: dict[str, Any]) -> bool:
        """Store ``obj`` unless an equal or newer version is held; True if stored."""
        name = obj["metadata"]["name"]
        held = store[uid].get(name)
        if held is not None and _resource_version(held) > _resource_version(obj):
            return False
        store[uid][name] = obj
        return True

    def upsert_job(self, job: dict[str, Any]) -> str | None:
        uid = self.run_uid(job)
        if uid is None:
            return None
        trimmed = trim_job(job)
        self._upsert(self.jobs, uid, trimmed)
        self.expected[uid].pop(trimmed["metadata"]["name"], None)
        return uid

    def delete_job(self, job: dict[str, Any]) -> str | None:
        uid = self.run_uid(job)
        if uid is not None:
            self.jobs[uid].pop(job["metadata"]["name"], None)
        return uid

    def upsert_pod(self, pod: dict[str, Any]) -> tuple[str | None, bool]:
        """(run uid, whether anything the reconciler reads changed)."""
        uid = self.run_uid(pod)
        if uid is None:
            return None, False
        trimmed = trim_pod(pod)
        held = self.pods[uid].get(trimmed["metadata"]["name"])
        changed = held is None or held["status"] != trimmed["status"]
        self._upsert(self.pods, uid, trimmed)
        return uid, changed

    def delete_pod(self, pod: dict[str, Any]) -> str | None:
        uid = self.run_uid(pod)
        if uid is not None:
            self.pods[uid].pop(pod["metadata"]["name"], None)
        return uid

    def expect(self, uid: str, job_name: str, task: str, attempt: int = 0) -> None:
        self.expected[uid][job_name] = (task, attempt, time.monotonic())

    def expected_jobs(self, uid: str) -> dict[str, tuple[str, int]]:
        """Job name -> (task, attempt) for Jobs created but not yet seen in a watch event."""
        now = time.monotonic()
        held = self.jobs.get(uid, {})
        return {
            name: (task, attempt)
            for name, (task, attempt, at) in self.expected.get(uid, {}).items()
            if now - at < EXPECTATION_TTL and name not in held
        }

    def jobs_of(self, uid: str) -> list[dict[str, Any]]:
        return list(self.jobs.get(uid, {}).values())

    def pods_of_job(self, uid: str, job_name: str) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.pods.get(uid, {}).values()
            if pod["metadata"]["labels"].get(JOB_NAME_LABEL) == job_name
        ]

    def forget_run(self, uid: str) -> None:
        self.jobs.pop(uid, None)
        self.pods.pop(uid, None)
        self.expected.pop(uid, None)
