"""What a new run will execute: its pipeline, params and reused tasks (pure).

A run names its pipeline in one of three ways (a Pipeline by reference, an
inline spec, or a finished run to re-run); this module turns that, plus the
object the reconciler fetched for it, into one validated ``RunSource``, or
says why the run cannot start (``Refused``) or cannot start *yet*
(``NotYet``: GitOps tools may apply a run before its Pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from sluice.api import labels
from sluice.api.v1alpha1 import (
    FINISHED_RUN_PHASES,
    AssetEvent,
    DataInterval,
    InstanceStatus,
    PipelineRunSpec,
    PipelineRunStatus,
    PipelineSpec,
    TaskRunStatus,
    WorkspaceSpec,
)
from sluice.engine.clock import WAKE_MARGIN_SECONDS
from sluice.engine.dag import Graph, build_graph
from sluice.engine.data_interval import RunTimes, run_times
from sluice.engine.errors import InvalidPipeline
from sluice.engine.params import bind_params, check_references

INLINE = labels.INLINE_PIPELINE


@dataclass(frozen=True)
class Fetched:
    """An object a run names (its Pipeline, or the run it re-runs), as read
    this pass; ``body`` is None when it does not exist.
    """

    name: str
    body: Mapping[str, Any] | None


@dataclass(frozen=True)
class RunSource:
    """What a run executes, resolved once and then frozen in its status."""

    spec: PipelineSpec
    pipeline_name: str
    params: dict[str, str]
    graph: Graph
    reused: list[TaskRunStatus] = field(default_factory=list)
    claim: str | None = None
    times: RunTimes | None = None  # a rerun's: its source's
    triggered_by: list[AssetEvent] | None = None  # a rerun's: its source's


@dataclass(frozen=True)
class Refused:
    """The run cannot start: it fails at once with this reason."""

    reason: str
    message: str
    pipeline_name: str | None = None


@dataclass(frozen=True)
class NotYet:
    """The referenced Pipeline does not exist yet; look again in ``retry_after`` seconds."""

    pipeline_name: str
    message: str
    retry_after: float


def validation_message(error: ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: what is wrong``."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"


@dataclass(frozen=True)
class SourceRef:
    """The object a run that has not started names, to be read before it can."""

    kind: Literal["pipeline", "run"]
    name: str


def source_to_fetch(spec: PipelineRunSpec) -> SourceRef | None:
    """What the reconciler must read before a run can start: the Pipeline it
    references or the run it re-runs; None for an inline spec.
    """
    if spec.rerun_of is not None:
        return SourceRef("run", spec.rerun_of.name)
    if spec.pipeline_spec is None and spec.pipeline_ref is not None:
        return SourceRef("pipeline", spec.pipeline_ref.name)
    return None


def resolve_source(
    spec: PipelineRunSpec,
    fetched: Fetched | None,
    namespace: str,
    waited_seconds: float,
    grace_seconds: float,
) -> RunSource | Refused | NotYet:
    """The validated pipeline a run executes, from its spec and the object
    named by ``source_to_fetch`` (``fetched``).
    """
    if spec.rerun_of is not None:
        return _rerun_source(spec.rerun_of.name, fetched)
    if spec.pipeline_spec is not None:
        pipeline_spec, pipeline_name = spec.pipeline_spec, INLINE
    elif spec.pipeline_ref is not None:
        pipeline_name = spec.pipeline_ref.name
        referenced = _referenced_pipeline(pipeline_name, fetched, namespace, waited_seconds, grace_seconds)
        if not isinstance(referenced, PipelineSpec):
            return referenced
        pipeline_spec = referenced
    else:
        return Refused("InvalidSpec", "one of spec.pipelineRef or spec.pipelineSpec is required")
    if spec.workspace is not None:
        if pipeline_name != INLINE:
            refusal = override_refusal(pipeline_name, pipeline_spec.workspace, spec.workspace)
            if refusal is not None:
                return refusal
        pipeline_spec = pipeline_spec.model_copy(update={"workspace": spec.workspace})
    try:
        graph = build_graph(pipeline_spec)
        check_references(pipeline_spec, graph)
        params = bind_params(pipeline_spec, spec.params)
    except InvalidPipeline as error:
        return Refused(error.reason, error.message, pipeline_name)
    return RunSource(pipeline_spec, pipeline_name, params, graph)


def override_refusal(
    pipeline_name: str, declared: WorkspaceSpec | None, wanted: WorkspaceSpec
) -> Refused | None:
    """Whether a run may replace its Pipeline's workspace as it asks. The
    Pipeline's author decides: whoever may create runs would otherwise
    mount any volume (a hostPath, another team's claim) into pods that run
    with the Pipeline's service account.
    """
    allowed = declared.run_override if declared is not None else "None"
    if allowed == "Any" or (allowed == "ClaimTemplate" and wanted.volume is None):
        return None
    if allowed == "ClaimTemplate":
        message = (
            f'pipeline "{pipeline_name}" lets a run bring only its own volumeClaimTemplate '
            "(workspace.runOverride: ClaimTemplate), not an existing volume"
        )
    else:
        message = (
            f'pipeline "{pipeline_name}" does not let runs replace its workspace: set its '
            "workspace.runOverride to ClaimTemplate or Any to allow it"
        )
    return Refused("WorkspaceOverrideNotAllowed", message, pipeline_name)


def _referenced_pipeline(
    name: str, fetched: Fetched | None, namespace: str, waited_seconds: float, grace_seconds: float
) -> PipelineSpec | Refused | NotYet:
    """The spec of the Pipeline a run references, once it exists and parses."""
    if fetched is None or fetched.body is None:
        message = f'pipeline "{name}" not found in namespace "{namespace}"'
        if waited_seconds < grace_seconds:
            return NotYet(
                name, message + "; waiting for it", grace_seconds - waited_seconds + WAKE_MARGIN_SECONDS
            )
        return Refused("PipelineNotFound", message, name)
    try:
        return PipelineSpec.model_validate(fetched.body.get("spec") or {})
    except ValidationError as error:
        return Refused("InvalidPipeline", f'pipeline "{name}": {validation_message(error)}', name)


def _rerun_source(name: str, fetched: Fetched | None) -> RunSource | Refused:
    """What a rerun takes from the run it re-runs: the spec snapshot, params,
    the succeeded tasks (reused with their results) and the workspace claim.
    """
    if fetched is None or fetched.body is None:
        return Refused("RerunSourceNotFound", f'run "{name}" (spec.rerunOf) was not found')
    old = PipelineRunStatus.model_validate(fetched.body.get("status") or {})
    if old.phase not in FINISHED_RUN_PHASES or old.pipeline_spec is None:
        message = f'run "{name}" has not finished; only a finished run can be re-run'
        return Refused("RerunSourceNotFinished", message, old.pipeline_name)
    reused = [
        task.model_copy(update={"reason": "Reused", "message": f"reused from run {name}"})
        for task in old.tasks or ()
        if task.phase == "Succeeded"
    ]
    # A fanned-out task that failed runs again only its instances that did
    # not succeed (Pending again): the same inputs give the same instances,
    # index by index, and the count stays known before it fans out again.
    reused += [
        task.model_copy(
            update={
                "phase": "Pending",
                "reason": None,
                "message": None,
                "start_time": None,
                "completion_time": None,
                "instances": [
                    i
                    if i.phase == "Succeeded"
                    else InstanceStatus(index=i.index, values=i.values, phase="Pending")
                    for i in task.instances or ()
                ],
            }
        )
        for task in old.tasks or ()
        if task.phase != "Succeeded" and any(i.phase == "Succeeded" for i in task.instances or ())
    ]
    params = {param.name: param.value for param in old.params or ()}
    spec = old.pipeline_spec
    return RunSource(
        spec,
        old.pipeline_name or INLINE,
        params,
        build_graph(spec),
        reused,
        old.workspace_claim_name,
        frozen_times(fetched.body, old),
        old.triggered_by,
    )


def frozen_times(body: Mapping[str, Any], status: PipelineRunStatus) -> RunTimes:
    """The times a started run was for: as its status froze them, or (a run
    started before they were frozen) as they are derived from it.
    """
    if status.scheduled_time and status.scheduled_date and status.data_interval:
        return RunTimes(status.scheduled_time, status.scheduled_date, status.data_interval)
    meta = body.get("metadata") or {}
    given = (body.get("spec") or {}).get("dataInterval")
    schedule = status.pipeline_spec.schedule if status.pipeline_spec else None
    return run_times(
        meta.get("annotations") or {},
        DataInterval.model_validate(given) if given else None,
        schedule,
        meta.get("creationTimestamp") or "",
    )
