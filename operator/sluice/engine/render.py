"""Render one attempt of a task into the pod that runs it (pure, no I/O).

Why a bare pod and not a Job: the Job controller is a second hop on every
edge of the DAG (its own watch, queue and status batching), and Sluice
already decides retries itself. What the Job gave for free is explicit here:
the run owns the pod (garbage collection), ``activeDeadlineSeconds`` bounds
an attempt, and a tracking finalizer keeps the pod until the run's status
has recorded its outcome, so no exit code or result is lost to a pod
deleted early (by hand, by eviction, by the pod GC).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from sluice.api import labels
from sluice.api.v1alpha1 import API_VERSION, EnvVar, PipelineSpec, PodDefaults, TaskSpec
from sluice.engine.naming import attempt_name, claim_name, label_value
from sluice.engine.params import substitute
from sluice.engine.script import SCRIPT_DIR, SCRIPT_VOLUME, kubelet_literal, render_script

CONTAINER_NAME = "task"
# Held on every task pod until the run's status records the attempt's outcome.
TRACKING_FINALIZER = "sluice.dev/task-outcome"


@dataclass(frozen=True)
class RunIdentity:
    """What a task's pod needs to know about the run that owns it."""

    namespace: str
    name: str
    uid: str
    pipeline_name: str


def owner_reference(run: RunIdentity) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "name": run.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def task_labels(run: RunIdentity, task: str) -> dict[str, str]:
    result = {
        labels.MANAGED_BY: labels.MANAGER,
        labels.RUN: label_value(run.name),
        labels.RUN_UID: run.uid,
        labels.TASK: task,
    }
    if run.pipeline_name != labels.INLINE_PIPELINE:
        result[labels.PIPELINE] = label_value(run.pipeline_name)
    return result


def _merge_env(defaults: list[EnvVar] | None, own: list[EnvVar] | None) -> list[EnvVar]:
    """Defaults first, a task's own variable of the same name replaces it."""
    merged = {env.name: env for env in defaults or ()}
    merged.update({env.name: env for env in own or ()})
    return list(merged.values())


def _resources(defaults: PodDefaults | None, task: TaskSpec) -> dict[str, Any] | None:
    result: dict[str, dict[str, Any]] = {}
    for source in (defaults.resources if defaults else None, task.resources):
        if source is None:
            continue
        for kind in ("requests", "limits"):
            values = getattr(source, kind)
            if values:
                result.setdefault(kind, {}).update(values)
    return result or None


WORKSPACE_VOLUME = "workspace"


def workspace_claim(run: RunIdentity, spec: PipelineSpec) -> dict[str, Any] | None:
    """The run's own PersistentVolumeClaim, when its workspace asks for one."""
    if spec.workspace is None or spec.workspace.volume_claim_template is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(run.name, run.uid),
            "namespace": run.namespace,
            "labels": {k: v for k, v in task_labels(run, "").items() if k != labels.TASK},
            "ownerReferences": [owner_reference(run)],
        },
        "spec": spec.workspace.volume_claim_template,
    }


def _workspace_volume(
    run: RunIdentity, spec: PipelineSpec, claim: str | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(volume, volumeMount) for the run's workspace, if it has one."""
    workspace = spec.workspace
    if workspace is None:
        return None
    if workspace.volume_claim_template is not None:
        name = claim or claim_name(run.name, run.uid)
        source: dict[str, Any] = {"persistentVolumeClaim": {"claimName": name}}
    else:
        source = dict(workspace.volume or {})
    return {"name": WORKSPACE_VOLUME, **source}, {"name": WORKSPACE_VOLUME, "mountPath": workspace.mount_path}


def render_pod(
    run: RunIdentity,
    spec: PipelineSpec,
    task: TaskSpec,
    variables: Mapping[str, str],
    attempt: int = 0,
    claim: str | None = None,
    instance: int | None = None,
) -> dict[str, Any]:
    """The pod for one attempt of one task (or of one ``instance`` of a
    fanned-out task, whose ``$(matrix.*)`` values ``variables`` holds) of one
    run (``claim``: a workspace claim other than the run's own, as a rerun
    reuses its source's).

    The user's labels and annotations (pipeline defaults, then the task's)
    pass through, so admission systems keyed on them (Kueue's queue-name
    label, cost allocation, service meshes) see task pods as usual; Sluice's
    own labels win on a clash because the operator finds its pods by them.
    """
    defaults = spec.defaults
    # A view, not a copy: a 1,000-way fan-out renders 1,000 pods from one
    # run's variables (every task's status and results).
    scope = ChainMap({"context.task.name": task.name}, cast(MutableMapping[str, str], variables))

    def sub(values: list[str] | None) -> list[str] | None:
        return [substitute(v, scope, for_kubelet=True) for v in values] if values is not None else None

    env = [
        {"name": e.name, "valueFrom": e.value_from}
        if e.value is None and e.value_from is not None
        else {"name": e.name, "value": substitute(e.value or "", scope, for_kubelet=True)}
        for e in _merge_env(defaults.env if defaults else None, task.env)
    ]
    command = sub(task.command)
    own_env = {str(e["name"]) for e in env}
    script = render_script(task.script, scope, own_env) if task.script is not None else None
    if script is not None:
        command = script.command
        env += [{"name": name, "value": kubelet_literal(value)} for name, value in script.env]
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": task.image,
        "command": command,
        "args": sub(task.args),
        "workingDir": substitute(task.working_dir, scope) if task.working_dir else None,
        "env": env or None,
        "envFrom": task.env_from,
        "resources": _resources(defaults, task),
        "securityContext": defaults.security_context if defaults else None,
        # On failure the last log lines become the termination message, so the
        # run's status can say why a task failed even after its pod is gone.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    own_labels = {**task_labels(run, task.name), labels.ATTEMPT: str(attempt)}
    if instance is not None:
        own_labels[labels.INSTANCE] = str(instance)
    pod_labels = dict(own_labels)
    pod_annotations: dict[str, str] = {}
    for meta in (defaults.metadata if defaults else None, task.metadata):
        if meta is not None:
            pod_annotations.update(meta.annotations or {})
            theirs = {k: v for k, v in (meta.labels or {}).items() if k not in labels.OWN}
            pod_labels = {**theirs, **pod_labels}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    workspace = _workspace_volume(run, spec, claim)
    if workspace is not None:
        volumes.append(workspace[0])
        mounts.append(workspace[1])
    if script is not None and script.needs_volume:
        volumes.append({"name": SCRIPT_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
        mounts.append({"name": SCRIPT_VOLUME, "mountPath": SCRIPT_DIR})
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        # Retries are Sluice's business (per-task policy, one pod per attempt).
        "restartPolicy": "Never",
        "containers": [_drop_none(container)],
    }
    if task.timeout_seconds:
        pod_spec["activeDeadlineSeconds"] = task.timeout_seconds
    if volumes:
        pod_spec["volumes"] = volumes
    if defaults is not None:
        pod_spec.update(
            _drop_none(
                {
                    "serviceAccountName": defaults.service_account_name,
                    "nodeSelector": defaults.node_selector,
                    "tolerations": defaults.tolerations,
                    "imagePullSecrets": [s.to_api() for s in defaults.image_pull_secrets]
                    if defaults.image_pull_secrets
                    else None,
                    "securityContext": defaults.pod_security_context,
                }
            )
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _drop_none(
            {
                "name": attempt_name(run.name, run.uid, task.name, attempt, instance),
                "namespace": run.namespace,
                "labels": pod_labels,
                "annotations": pod_annotations or None,
                "ownerReferences": [owner_reference(run)],
                "finalizers": [TRACKING_FINALIZER],
            }
        ),
        "spec": pod_spec,
    }


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}
