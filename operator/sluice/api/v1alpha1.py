"""The sluice.dev/v1alpha1 API: Pipeline and PipelineRun.

These pydantic models are the single source of truth for the API: the CRD
schemas in ``crds/`` are generated from them (``hack/gen-crds``) and a test
fails when the committed CRDs drift. Validation that an OpenAPI schema can
express (types, patterns, required fields, unique names) is declared here so
the API server rejects bad input at ``kubectl apply`` time; what it cannot
express (cycles, unknown dependencies, parameter binding) is checked by the
operator and reported in status.

Kubernetes types that Sluice only passes through to the pod (tolerations,
security contexts, envFrom sources...) are kept as open objects: the API
server validates them when the pod is created, and a rejection is reported on
the run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sluice.api.schema_hints import (
    dns_label,
    int_or_string,
    list_map,
    list_set,
    open_object,
)

GROUP = "sluice.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PIPELINES = "pipelines"
PIPELINE_RUNS = "pipelineruns"
BACKFILLS = "backfills"
ASSETS = "assets"
TRIGGERS = "triggers"

# A container image reference (registry/path:tag@digest), as the container
# runtimes parse it. Upper case is only allowed in the registry host.
IMAGE_PATTERN = (
    r"^((([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"(:[0-9]+)?/)?[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*)"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
TASK_NAME_MAX = 63
# An asset's name: what producers and consumers agree on, e.g. warehouse.daily_sales.
ASSET_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
ASSET_NAME_MAX = 200
# What a schedule may wait on: an asset of its own namespace, or NAMESPACE/ASSET
# where that namespace's Asset lists the consumer's in allowedNamespaces.
ASSET_REF_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[A-Za-z0-9_][A-Za-z0-9_.-]*$"
MAX_ASSETS = 20
MAX_TRIGGERED_PER_MINUTE = 1000
MAX_TASKS = 5000
MAX_DEPENDENCIES = 1000


def camel(name: str) -> str:
    """snake_case field name -> camelCase wire name."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class ApiModel(BaseModel):
    """Base for API types: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", alias_generator=camel)

    def to_api(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def differs_from(self, other: ApiModel) -> bool:
        """Whether writing this over ``other`` would change what is stored.

        Field-by-field model equality: the same answer as comparing the two
        serialised forms, without serialising a 5,000-task status twice.
        """
        return self != other


# --- shared -------------------------------------------------------------------


class EnvVar(ApiModel):
    """An environment variable; ``value`` may use ``$(params.NAME)``."""

    name: str = Field(min_length=1, pattern=ENV_NAME_PATTERN)
    value: str | None = None
    value_from: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra=open_object("A core/v1 EnvVarSource, passed to the pod as is."),
    )


Quantity = int | str


class ResourceRequirements(ApiModel):
    """CPU and memory requests and limits for a task's container."""

    requests: dict[str, Quantity] | None = Field(
        default=None, json_schema_extra={"additionalProperties": int_or_string()}
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, json_schema_extra={"additionalProperties": int_or_string()}
    )


class LocalObjectReference(ApiModel):
    name: str = Field(min_length=1)


class PodMetadata(ApiModel):
    """Labels and annotations added to a task's pod (e.g. for sidecar injection)."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodDefaults(ApiModel):
    """Pod settings applied to every task of a pipeline; a task's own
    ``resources`` and ``env`` take precedence over these.
    """

    service_account_name: str | None = Field(default=None, json_schema_extra=dns_label(253))
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"items": open_object("A core/v1 Toleration.")}
    )
    resources: ResourceRequirements | None = None
    env: list[EnvVar] | None = Field(default=None, json_schema_extra=list_map("name"))
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, json_schema_extra=list_map("name")
    )
    security_context: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra=open_object("A core/v1 SecurityContext for every task container."),
    )
    pod_security_context: dict[str, Any] | None = Field(
        default=None, json_schema_extra=open_object("A core/v1 PodSecurityContext.")
    )
    metadata: PodMetadata | None = None


# --- Pipeline -----------------------------------------------------------------


class ParamSpec(ApiModel):
    """A pipeline parameter; without ``default`` a run must supply it."""

    name: str = Field(min_length=1, max_length=128, pattern=PARAM_NAME_PATTERN)
    description: str | None = None
    default: str | None = None


class Backoff(ApiModel):
    """Delay before retry n (1-based): initialSeconds * factor^(n-1), at most maxSeconds."""

    initial_seconds: int = Field(default=10, ge=0, le=86400)
    factor: float = Field(default=2.0, ge=1, le=10)
    max_seconds: int = Field(default=300, ge=0, le=86400)


class RetryPolicy(ApiModel):
    """Re-run a failed task up to ``limit`` more times; each attempt is a new pod."""

    limit: int = Field(ge=0, le=20)
    backoff: Backoff | None = None


RESULT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class ResultSpec(ApiModel):
    """A small named value the task writes as a `name=value` line to
    /dev/termination-log; downstream tasks read `$(tasks.NAME.results.KEY)`.
    """

    name: str = Field(min_length=1, max_length=64, pattern=RESULT_NAME_PATTERN)
    description: str | None = None


class WhenExpression(ApiModel):
    """Run the task only if `input` (after substitution) is / is not in `values`."""

    input: str = Field(max_length=1024)
    operator: Literal["in", "notin"]
    values: list[str] = Field(min_length=1, max_length=100)


MAX_INSTANCES = 1000
MAX_AXES = 10
SCRIPT_MAX = 65_536
# What a matrix axis may read its values from: a param, or an upstream task's result.
MATRIX_SOURCE_PATTERN = (
    r"^\$\((params\.[A-Za-z_][A-Za-z0-9_-]*"
    r"|tasks\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.results\.[A-Za-z_][A-Za-z0-9_-]*)\)$"
)


class MatrixAxis(ApiModel):
    """One axis of a fan-out: its values are a literal list, or read when the
    task becomes ready from ``from``, which must hold a JSON array of scalars.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.values) != has(self.from)",
                    "message": "a matrix axis needs exactly one of values or from",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=64, pattern=PARAM_NAME_PATTERN)
    values: list[int | str] | None = Field(
        default=None, max_length=MAX_INSTANCES, json_schema_extra={"items": int_or_string()}
    )
    from_: str | None = Field(
        default=None,
        alias="from",
        max_length=256,
        pattern=MATRIX_SOURCE_PATTERN,
        description=(
            "$(params.NAME) or $(tasks.TASK.results.NAME): a JSON array of strings, numbers or booleans."
        ),
    )


class Matrix(ApiModel):
    """Run the task once per combination of its axes' values (their cross
    product, the last axis varying fastest), then once per ``include`` entry;
    each instance reads its values as ``$(matrix.AXIS)``.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.axes) || has(self.include)", "message": "a matrix needs axes or include"}
            ]
        }
    )

    axes: list[MatrixAxis] | None = Field(
        default=None, min_length=1, max_length=MAX_AXES, json_schema_extra=list_map("name")
    )
    include: list[dict[str, int | str]] | None = Field(
        default=None,
        max_length=MAX_INSTANCES,
        json_schema_extra={"items": {"type": "object", "additionalProperties": int_or_string()}},
        description="Explicit combinations (axis name -> value), run after the cross product.",
    )
    parallelism: int | None = Field(
        default=None, ge=1, description="At most this many of the task's instances at once."
    )


class TaskSpec(ApiModel):
    """One containerised step; each run runs it as one pod per attempt (one per
    instance and attempt when it has a ``matrix``).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.script) && has(self.command))",
                    "message": "a task has either script or command, not both",
                }
            ]
        }
    )

    name: str = Field(json_schema_extra=dns_label(TASK_NAME_MAX))
    image: str = Field(min_length=1, max_length=512, pattern=IMAGE_PATTERN)
    command: list[str] | None = None
    args: list[str] | None = None
    script: str | None = Field(
        default=None,
        min_length=1,
        max_length=SCRIPT_MAX,
        description=(
            "A script run by /bin/sh, or by the interpreter its #! line names; args become its "
            "arguments. In a shell script a $(...) reference becomes an environment variable, "
            "never text pasted into the code."
        ),
    )
    working_dir: str | None = None
    env: list[EnvVar] | None = Field(default=None, json_schema_extra=list_map("name"))
    env_from: list[dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"items": open_object("A core/v1 EnvFromSource.")}
    )
    resources: ResourceRequirements | None = None
    depends_on: list[str] | None = Field(
        default=None, max_length=MAX_DEPENDENCIES, json_schema_extra=list_set(dns_label(TASK_NAME_MAX))
    )
    metadata: PodMetadata | None = None
    retries: RetryPolicy | None = None
    trigger_rule: Literal["AllSucceeded", "AllDone", "AnyFailed", "AllFailed", "NoneFailed"] = Field(
        default="AllSucceeded",
        description="What upstream outcome lets this task run; otherwise it is Skipped.",
    )
    when: list[WhenExpression] | None = Field(default=None, max_length=20)
    results: list[ResultSpec] | None = Field(default=None, max_length=20, json_schema_extra=list_map("name"))
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Per attempt: the pod's activeDeadlineSeconds; exceeding it fails the attempt (Timeout).",
    )
    matrix: Matrix | None = Field(
        default=None,
        description=f"Fan out: one instance per combination of values, at most {MAX_INSTANCES}.",
    )
    updates_assets: list[str] | None = Field(
        default=None,
        max_length=MAX_ASSETS,
        json_schema_extra=list_set(
            {"type": "string", "minLength": 1, "maxLength": ASSET_NAME_MAX, "pattern": ASSET_NAME_PATTERN}
        ),
        description=(
            "Assets (e.g. warehouse.daily_sales) this task updates: each time it succeeds in a run, "
            "each asset's Asset object records one update, which pipelines scheduled onAssets wait for."
        ),
    )


class WorkspaceSpec(ApiModel):
    """Storage mounted into every task of a run, for data too big for params.

    Exactly one source: ``volumeClaimTemplate`` creates a PersistentVolumeClaim
    per run (owned by the run, deleted with it); ``volume`` mounts an existing
    volume source (a PVC by name, an NFS share, a hostPath...) shared by runs,
    in which tasks should use `$(context.pipelineRun.name)` to keep runs apart.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.volumeClaimTemplate) != has(self.volume)",
                    "message": "a workspace needs exactly one of volumeClaimTemplate or volume",
                }
            ]
        }
    )

    mount_path: str = Field(default="/workspace", pattern=r"^/.*$", max_length=1024)
    volume_claim_template: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra=open_object(
            "A PersistentVolumeClaim spec (accessModes, resources, storageClassName)."
        ),
    )
    volume: dict[str, Any] | None = Field(
        default=None,
        json_schema_extra=open_object(
            "A core/v1 volume source, e.g. {persistentVolumeClaim: {claimName: data}}."
        ),
    )
    run_override: Literal["None", "ClaimTemplate", "Any"] = Field(
        default="None",
        description=(
            "On a Pipeline: what a PipelineRun's spec.workspace may replace this with. None: "
            "nothing; ClaimTemplate: its own volumeClaimTemplate (a new claim, e.g. bigger); "
            "Any: also an existing volume source (a hostPath or another team's claim: grant "
            "it only where everyone who may create runs may mount that)."
        ),
    )


class ParamValue(ApiModel):
    name: str = Field(min_length=1, max_length=128, pattern=PARAM_NAME_PATTERN)
    value: str


CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"


class ScheduleSpec(ApiModel):
    """Start runs on a cron schedule (each run named after its scheduled
    time), on updates of data assets, or both.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.cron) || has(self.onAssets)",
                    "message": "a schedule needs cron, onAssets or both",
                }
            ]
        }
    )

    cron: str | None = Field(default=None, pattern=CRON_PATTERN, max_length=256)
    on_assets: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ASSETS,
        json_schema_extra=list_set(
            {"type": "string", "minLength": 1, "maxLength": 264, "pattern": ASSET_REF_PATTERN}
        ),
        description=(
            "Start one run once every listed asset has been updated since the last run they "
            "started (NAMESPACE/ASSET for another namespace's asset, if its Asset allows this one)."
        ),
    )
    timezone: str = Field(default="UTC", max_length=64)
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: int | None = Field(default=None, ge=0)
    suspend: bool = False
    catch_up: int = Field(
        default=0,
        ge=0,
        le=100,
        description="After downtime, start up to this many missed runs, oldest first (0: only the newest).",
    )
    params: list[ParamValue] | None = Field(default=None, max_length=100, json_schema_extra=list_map("name"))
    successful_runs_history_limit: int = Field(default=3, ge=0, le=1000)
    failed_runs_history_limit: int = Field(default=1, ge=0, le=1000)


class PipelineSpec(ApiModel):
    """A DAG of tasks; edges come from each task's `dependsOn`."""

    description: str | None = None
    params: list[ParamSpec] | None = Field(default=None, max_length=100, json_schema_extra=list_map("name"))
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS, json_schema_extra=list_map("name"))
    defaults: PodDefaults | None = None
    workspace: WorkspaceSpec | None = None
    finally_: list[TaskSpec] | None = Field(
        default=None,
        alias="finally",
        max_length=50,
        json_schema_extra=list_map("name"),
        description="Tasks run after all others have finished, whatever the outcome (alerts, cleanup).",
    )
    schedule: ScheduleSpec | None = None
    parallelism: int | None = Field(
        default=None, ge=1, description="At most this many tasks of a run at once."
    )
    max_concurrent_runs: int | None = Field(
        default=None,
        ge=1,
        description="At most this many runs of this pipeline at once; others wait Pending.",
    )
    max_triggered_runs_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TRIGGERED_PER_MINUTE,
        description=(
            "At most this many runs started by asset updates, and this many started by Trigger events "
            "(counted apart, by each triggers server replica), in any minute: asset updates beyond it "
            "wait and are gathered into the next run, events are refused (429)."
        ),
    )


class AssetWatermark(ApiModel):
    """How far a pipeline scheduled on an asset has consumed its updates."""

    name: str = Field(description="The asset as schedule.onAssets names it.")
    uid: str | None = Field(default=None, description="The Asset object counted (a new one counts afresh).")
    consumed_sequence: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The asset's update sequence its last run started from (or its baseline); "
            "unset until the asset can be read."
        ),
    )
    latest_sequence: int | None = Field(default=None, ge=0, description="The asset's newest update seen.")
    message: str | None = Field(default=None, description="Why it cannot be read, if it cannot.")


class PipelineStatus(ApiModel):
    """What the operator last saw of a Pipeline; the spec stays the user's."""

    observed_generation: int | None = None
    task_count: int | None = None
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=list_map("type"))
    last_run_name: str | None = None
    last_schedule_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    next_schedule_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    observed_schedule: str | None = Field(
        default=None,
        description="The cron|timezone the schedule's times were computed for; |suspended while suspended.",
    )
    schedule_active_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description=(
            "When the schedule as written took effect (added, changed or resumed): "
            "no time before it fires on its own (a Backfill loads those)."
        ),
    )
    assets: list[AssetWatermark] | None = Field(
        default=None,
        json_schema_extra=list_map("name"),
        description="Per schedule.onAssets entry: the updates consumed and the newest seen.",
    )
    asset_runs: int | None = Field(
        default=None, ge=0, description="Runs started by asset updates so far (names the next one)."
    )
    asset_run_times: list[str] | None = Field(
        default=None,
        max_length=MAX_TRIGGERED_PER_MINUTE,
        description="When the latest asset runs started, for maxTriggeredRunsPerMinute.",
    )
    last_asset_run_name: str | None = None


# --- PipelineRun --------------------------------------------------------------


class PipelineRef(ApiModel):
    name: str = Field(json_schema_extra=dns_label(253))


class RunRef(ApiModel):
    name: str = Field(json_schema_extra=dns_label(253))


class DataInterval(ApiModel):
    """The span of data a run loads, as Airflow's data interval: a scheduled
    run's is from the schedule's previous instant to its own.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "timestamp(self.start) <= timestamp(self.end)",
                    "message": "dataInterval.start must not be after dataInterval.end",
                }
            ]
        }
    )

    start: str = Field(json_schema_extra={"format": "date-time"}, description="RFC 3339, inclusive.")
    end: str = Field(json_schema_extra={"format": "date-time"}, description="RFC 3339, exclusive.")


class PipelineRunSpec(ApiModel):
    """Runs a Pipeline by reference or an inline pipelineSpec (exactly one)."""

    pipeline_ref: PipelineRef | None = None
    pipeline_spec: PipelineSpec | None = None
    params: list[ParamValue] | None = Field(default=None, max_length=100, json_schema_extra=list_map("name"))
    workspace: WorkspaceSpec | None = Field(
        default=None, description="Overrides the pipeline's workspace for this run (e.g. a bigger volume)."
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        description="The whole run; when exceeded its pods are stopped and it fails (Timeout).",
    )
    cancelled: bool = Field(
        default=False, description="Set to true to stop the run's pods and end it Cancelled."
    )
    rerun_of: RunRef | None = Field(
        default=None,
        description="Re-run a finished run's unsucceeded tasks, reusing its succeeded ones (and results).",
    )
    data_interval: DataInterval | None = Field(
        default=None,
        description=(
            "The data this run loads: $(context.dataIntervalStart) and $(context.dataIntervalEnd). "
            "Unset on a run made by hand: the newest complete interval of the pipeline's schedule "
            "when it was created (from its creation time to itself without a schedule)."
        ),
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Delete the run (and its pods) this long after it finished. Unset: the operator's "
            "default for runs made by hand; scheduled runs are kept by their schedule's history limits."
        ),
    )


RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
TaskPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]

# The phase vocabulary, written once: every module that asks "has it
# finished?" or "did it fail?" reads these instead of spelling the phases.
FINISHED_RUN_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Cancelled"})
FINISHED_TASK_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Skipped", "Cancelled"})
# A task that ended without succeeding (what AllSucceeded refuses).
UNSUCCESSFUL_TASK_PHASES: frozenset[str] = frozenset({"Failed", "Skipped", "Cancelled"})
# A task that ended in failure (what AnyFailed and NoneFailed look for).
FAILED_TASK_PHASES: frozenset[str] = frozenset({"Failed", "Cancelled"})
# A task whose outcome is recorded for good (a Skipped task may still be
# re-decided while its upstream changes, so it is not kept from old status).
RECORDED_TASK_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Cancelled"})


class Condition(ApiModel):
    """The metav1.Condition shape."""

    type: str = Field(min_length=1, max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = None


class ResultValue(ApiModel):
    name: str
    value: str


class AttemptStatus(ApiModel):
    """What a task's (or an instance's) latest attempt recorded."""

    phase: TaskPhase
    pod_name: str | None = Field(default=None, description="The pod of the latest attempt.")
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = Field(default=None, max_length=4096)
    attempts: int | None = None
    results: list[ResultValue] | None = Field(default=None, json_schema_extra=list_map("name"))


class InstanceStatus(AttemptStatus):
    """One instance of a fanned-out task, by index."""

    index: int = Field(ge=0)
    values: str | None = Field(default=None, description="Its matrix values, as a reminder (shortened).")


class TaskRunStatus(AttemptStatus):
    """One task's state in a run; kept small so 500-task runs fit in etcd."""

    name: str
    job_name: str | None = Field(
        default=None,
        description="Deprecated, no longer written: the task's Job when tasks ran as Jobs.",
    )
    instances: list[InstanceStatus] | None = Field(
        default=None,
        json_schema_extra=list_map("index"),
        description="A fanned-out task's instances, in order; the task's phase sums them up.",
    )


class AssetUpdateRecord(ApiModel):
    """One asset update a run's task recorded (so it is never recorded twice)."""

    task: str
    asset: str


class PipelineRunStatus(ApiModel):
    phase: RunPhase | None = None
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=list_map("type"))
    observed_generation: int | None = None
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    duration: str | None = None
    progress: str | None = None
    pipeline_name: str | None = None
    pipeline_spec: PipelineSpec | None = None
    params: list[ParamValue] | None = Field(default=None, json_schema_extra=list_map("name"))
    workspace_claim_name: str | None = None
    scheduled_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="What $(context.scheduledTime) says, fixed when it started (a rerun: its source's).",
    )
    scheduled_date: str | None = None
    data_interval: DataInterval | None = Field(
        default=None, description="What it loads, fixed when it started (a rerun: its source's)."
    )
    tasks: list[TaskRunStatus] | None = Field(default=None, json_schema_extra=list_map("name"))
    assets_updated: list[AssetUpdateRecord] | None = Field(
        default=None,
        description="The asset updates its succeeded tasks have recorded on their Asset objects.",
    )
    triggered_by: list[AssetEvent] | None = Field(
        default=None,
        description="For a run started by asset updates: the newest update of each asset it waited on.",
    )

    @property
    def started(self) -> bool:
        """The spec snapshot is recorded: the run executes exactly that from now on."""
        return self.pipeline_spec is not None

    @property
    def finished(self) -> bool:
        """Ended for good: a final phase and its completion time are both recorded."""
        return self.phase in FINISHED_RUN_PHASES and self.completion_time is not None


PipelineStatus.model_rebuild()


# --- Backfill -------------------------------------------------------------------


def immutable(what: str) -> dict[str, Any]:
    """A field that cannot change once set (a CEL transition rule)."""
    return {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": f"{what} cannot be changed"}]}


MAX_BACKFILL_RUNS = 10_000


class BackfillSpec(ApiModel):
    """Load a past range of a scheduled Pipeline: one run per interval of its
    schedule that lies within [start, end], oldest first.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "timestamp(self.start) < timestamp(self.end)",
                    "message": "spec.start must be before spec.end",
                },
                {
                    # On the spec, not the field: a field's own transition rule
                    # is skipped when it was absent before (false by default).
                    "rule": "(has(self.rerunSucceeded) && self.rerunSucceeded)"
                    " == (has(oldSelf.rerunSucceeded) && oldSelf.rerunSucceeded)",
                    "message": "spec.rerunSucceeded cannot be changed",
                },
            ]
        }
    )

    pipeline_ref: PipelineRef = Field(json_schema_extra=immutable("spec.pipelineRef"))
    start: str = Field(
        json_schema_extra={"format": "date-time", **immutable("spec.start")},
        description="RFC 3339. The first run loads the schedule's first interval starting at or after it.",
    )
    end: str = Field(
        json_schema_extra={"format": "date-time", **immutable("spec.end")},
        description="RFC 3339. The last run loads the last interval ending at or before it.",
    )
    params: list[ParamValue] | None = Field(
        default=None,
        max_length=100,
        json_schema_extra=list_map("name"),
        description="Override the schedule's params by name; $(context.*) as in schedule params.",
    )
    max_concurrent: int = Field(default=1, ge=1, le=100, description="At most this many of its runs at once.")
    rerun_succeeded: bool = Field(
        default=False,
        description=(
            "Also run intervals some run already loaded successfully (a scheduled one, another backfill's)."
        ),
    )
    cancelled: bool = Field(
        default=False, description="Set to true to stop: no new runs, and its running runs are cancelled."
    )


class BackfillStatus(ApiModel):
    phase: RunPhase | None = None
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=list_map("type"))
    observed_generation: int | None = None
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    schedule: str | None = Field(
        default=None, description="The cron|timezone its intervals were taken from, kept for its whole life."
    )
    total: int | None = None
    done: int | None = Field(default=None, description="Intervals loaded: by its runs, or already before.")
    already_loaded: int | None = Field(
        default=None, description="Of done, those a run outside it had loaded."
    )
    running: int | None = None
    failed: int | None = None
    pending: int | None = None
    outcomes: str | None = Field(
        default=None,
        max_length=MAX_BACKFILL_RUNS,
        description=(
            "One letter per interval, oldest first: S succeeded, F failed, cancelled or deleted, L already "
            "loaded, R its run started, . not yet. Recorded outcomes stand even after the run is deleted."
        ),
    )
    last_run_name: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_RUN_PHASES and self.completion_time is not None


# --- Asset ----------------------------------------------------------------------

ASSET_EVENTS_KEPT = 20
ASSET_IDS_KEPT = 1000


class AssetSpec(ApiModel):
    """A named data asset. The operator creates one the first time a task
    updates it; apply one yourself to share it with other namespaces.
    """

    name: str = Field(
        min_length=1,
        max_length=ASSET_NAME_MAX,
        pattern=ASSET_NAME_PATTERN,
        json_schema_extra=immutable("spec.name"),
        description="The asset's name as tasks' updatesAssets and schedules' onAssets write it.",
    )
    description: str | None = Field(default=None, max_length=1024)
    allowed_namespaces: list[str] | None = Field(
        default=None,
        max_length=100,
        json_schema_extra=list_set({"type": "string", "minLength": 1, "maxLength": 63}),
        description=(
            'Other namespaces whose pipelines may be scheduled on this asset ("*": any). '
            "Its own namespace always may."
        ),
    )


class AssetEvent(ApiModel):
    """One update of an asset: which run's task made it, and the data it loaded."""

    asset: str | None = Field(default=None, description="On a run's triggeredBy: the onAssets entry.")
    sequence: int = Field(ge=1)
    time: str = Field(json_schema_extra={"format": "date-time"})
    namespace: str | None = None
    run: str
    run_uid: str | None = None
    pipeline: str | None = None
    task: str
    scheduled_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    scheduled_date: str | None = None
    data_interval: DataInterval | None = None


class AssetStatus(ApiModel):
    sequence: int | None = Field(default=None, ge=0, description="How many updates it has had.")
    last_update_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    last_updated_by: str | None = Field(default=None, description="RUN/TASK of the newest update.")
    events: list[AssetEvent] | None = Field(
        default=None,
        max_length=ASSET_EVENTS_KEPT,
        description=f"The newest {ASSET_EVENTS_KEPT} updates, oldest first.",
    )
    recorded: list[str] | None = Field(
        default=None,
        max_length=ASSET_IDS_KEPT,
        description=(
            f"Hashes of the newest {ASSET_IDS_KEPT} updates' run UID and task: an update recorded "
            "again after a lost write is found here and not counted twice."
        ),
    )


# --- Trigger --------------------------------------------------------------------


class SecretKeySelector(ApiModel):
    name: str = Field(json_schema_extra=dns_label(253))
    key: str = Field(default="secret", min_length=1, max_length=253)


class TriggerParam(ApiModel):
    """A run param taken from the event: ``value`` may hold $(body.PATH) and
    $(header.NAME) references, replaced by what the request carries.
    """

    name: str = Field(min_length=1, max_length=128, pattern=PARAM_NAME_PATTERN)
    value: str = Field(max_length=4096)


class TriggerSpec(ApiModel):
    """An authenticated HTTP endpoint that starts a run of a Pipeline for
    each event POSTed to it, signed with HMAC-SHA256.
    """

    pipeline_ref: PipelineRef
    secret_ref: SecretKeySelector = Field(
        description="The Secret key holding the HMAC key senders sign request bodies with."
    )
    authentication: Literal["HMACSHA256", "BearerToken"] = Field(
        default="HMACSHA256",
        description=(
            "HMACSHA256: the sender signs each body with the key (signatureHeader). BearerToken: the "
            "sender sends the key itself as Authorization: Bearer KEY, for senders that cannot sign "
            "(MinIO's webhook notifications); anyone who sees one request can then send others."
        ),
    )
    signature_header: str = Field(
        default="X-Sluice-Signature-256",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9-]+$",
        description="The header carrying sha256=HEX, the HMAC-SHA256 of the raw body.",
    )
    params: list[TriggerParam] | None = Field(
        default=None, max_length=100, json_schema_extra=list_map("name")
    )
    idempotency_key: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "What names one event, e.g. $(header.X-Request-Id) or $(body.id): a redelivered event "
            "maps to the same run and starts nothing. Unset: the SHA-256 of the body."
        ),
    )
    suspend: bool = Field(default=False, description="Refuse every event (503) while true.")


class TriggerStatus(ApiModel):
    observed_generation: int | None = None
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=list_map("type"))
    path: str | None = Field(default=None, description="Where to POST events, on the triggers Service.")
    last_run_name: str | None = None
    last_event_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


PipelineRunStatus.model_rebuild()
