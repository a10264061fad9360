"""A Pipeline's status: is its DAG valid, how many tasks (pure, no I/O).

Why report it on the Pipeline: a cycle or a typo in a reference cannot be
rejected by the CRD schema, so `kubectl get pipelines -o wide` shows it at
apply time instead of at the first run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from sluice.api.v1alpha1 import Condition, PipelineSpec, PipelineStatus
from sluice.engine.conditions import condition, set_condition
from sluice.engine.cron import CronSchedule
from sluice.engine.dag import build_graph
from sluice.engine.errors import InvalidPipeline
from sluice.engine.params import check_references


def _valid(status: str, reason: str, message: str, now: str) -> Condition:
    return condition("Valid", status, reason, message[:1024], now)


def pipeline_status(pipeline: Mapping[str, Any], now: str) -> PipelineStatus | None:
    """The status to write, or None when the current one is up to date."""
    generation = pipeline["metadata"].get("generation")
    status = PipelineStatus.model_validate(pipeline.get("status") or {})
    if status.observed_generation == generation and status.conditions:
        return None
    raw_tasks = (pipeline.get("spec") or {}).get("tasks") or ()
    try:
        spec = PipelineSpec.model_validate(pipeline.get("spec") or {})
        check_references(spec, build_graph(spec))
        if spec.schedule is not None and spec.schedule.cron:
            CronSchedule.parse(spec.schedule.cron, spec.schedule.timezone)
        valid = _valid("True", "Valid", f"{len(spec.tasks)} tasks form a valid DAG", now)
    except InvalidPipeline as error:
        valid = _valid("False", error.reason, error.message, now)
    except ValidationError as error:
        valid = _valid("False", "InvalidSpec", str(error), now)
    return status.model_copy(
        update={
            "observed_generation": generation,
            "task_count": len(raw_tasks),
            "conditions": set_condition(status.conditions, valid),
        }
    )
