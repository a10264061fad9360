"""In-memory view of the Jobs and pods that runs own, fed by watch events.

Why a cache: the reconciler must know every task's Job on every pass;
listing them from the API each time would cost a request per wake-up. Objects
are trimmed to what the reconciler reads (no managedFields, no pod spec), so
memory stays proportional to the number of tasks, not to object size.

"Expectations" cover the gap between creating a Job and its watch event
arriving: a Job we just created counts as existing, so a reconcile in that
gap neither re-creates it nor reports the task as not started. "Refusals"
remember what the API server refused to create for good (a 422), so the next
pass fails the task instead of trying again; they are memory, not truth: a
restarted operator tries once more and is refused again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sluice.api import labels
from sluice.engine.observe import CreatedJob, RefusedCreate

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
    """Jobs and pods grouped by the UID of the run that owns them.

    Pods are also grouped by their Job, so reading one task's pods does not
    scan every pod of a 500-task run on each reconcile.
    """

    def __init__(self) -> None:
        # run uid -> job name -> job
        self.jobs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        # run uid -> job name -> pod name -> pod
        self.pods: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
        # run uid -> job name -> (task, attempt, monotonic time of the create)
        self.expected: dict[str, dict[str, tuple[str, int, float]]] = defaultdict(dict)
        # run uid -> object name -> what the API server refused to create
        self.refused: dict[str, dict[str, RefusedCreate]] = defaultdict(dict)

    @staticmethod
    def run_uid(obj: dict[str, Any]) -> str | None:
        uid: str | None = (obj["metadata"].get("labels") or {}).get(labels.RUN_UID)
        return uid

    @staticmethod
    def _store(store: dict[str, dict[str, Any]], obj: dict[str, Any]) -> None:
        """Store ``obj`` unless a newer version is held (watch and list can interleave)."""
        held = store.get(obj["metadata"]["name"])
        if held is None or _resource_version(held) <= _resource_version(obj):
            store[obj["metadata"]["name"]] = obj

    def upsert_job(self, job: dict[str, Any]) -> None:
        uid = self.run_uid(job)
        if uid is None:
            return
        trimmed = trim_job(job)
        self._store(self.jobs[uid], trimmed)
        self.expected[uid].pop(trimmed["metadata"]["name"], None)

    def delete_job(self, job: dict[str, Any]) -> None:
        uid = self.run_uid(job)
        if uid in self.jobs:
            self.jobs[uid].pop(job["metadata"]["name"], None)

    @staticmethod
    def _job_of(pod: dict[str, Any]) -> str:
        job: str = (pod["metadata"].get("labels") or {}).get(JOB_NAME_LABEL) or ""
        return job

    def upsert_pod(self, pod: dict[str, Any]) -> bool:
        """Store the pod; True when anything the reconciler reads changed."""
        uid = self.run_uid(pod)
        if uid is None:
            return False
        trimmed = trim_pod(pod)
        store = self.pods[uid][self._job_of(trimmed)]
        held = store.get(trimmed["metadata"]["name"])
        self._store(store, trimmed)
        return held is None or held["status"] != trimmed["status"]

    def delete_pod(self, pod: dict[str, Any]) -> None:
        uid = self.run_uid(pod)
        if uid in self.pods:
            self.pods[uid][self._job_of(pod)].pop(pod["metadata"]["name"], None)

    def expect(self, uid: str, job_name: str, task: str, attempt: int = 0) -> None:
        self.expected[uid][job_name] = (task, attempt, time.monotonic())

    def created_jobs(self, uid: str) -> list[CreatedJob]:
        """Jobs created but not yet seen in a watch event."""
        now = time.monotonic()
        held = self.jobs.get(uid, {})
        return [
            CreatedJob(name, task, attempt)
            for name, (task, attempt, at) in self.expected.get(uid, {}).items()
            if now - at < EXPECTATION_TTL and name not in held
        ]

    def refuse(self, uid: str, refusal: RefusedCreate) -> None:
        self.refused[uid][refusal.name] = refusal

    def refusals(self, uid: str) -> list[RefusedCreate]:
        return list(self.refused.get(uid, {}).values())

    def jobs_of(self, uid: str) -> list[dict[str, Any]]:
        return list(self.jobs.get(uid, {}).values())

    def pods_by_job(self, uid: str) -> Mapping[str, Mapping[str, dict[str, Any]]]:
        """Job name -> pod name -> pod, for one run (a read-only view)."""
        return self.pods.get(uid) or {}

    def forget_run(self, uid: str) -> None:
        self.jobs.pop(uid, None)
        self.pods.pop(uid, None)
        self.expected.pop(uid, None)
        self.refused.pop(uid, None)
