"""A Pipeline's status: is its DAG valid, how many tasks (pure, no I/O).

Why report it on the Pipeline: a cycle or a typo in a reference cannot be
rejected by the CRD schema, so `kubectl get pipelines -o wide` shows it at
apply time instead of at the first run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.api.v1alpha1 import Condition, PipelineStatus
from sluice.engine.conditions import READY, condition, set_condition
from sluice.engine.validation import pipeline_problem


def _valid(status: str, reason: str, message: str, now: str) -> Condition:
    return condition("Valid", status, reason, message[:1024], now)


def pipeline_status(pipeline: Mapping[str, Any], now: str) -> PipelineStatus | None:
    """The status to write, or None when the current one is up to date."""
    generation = pipeline["metadata"].get("generation")
    status = PipelineStatus.model_validate(pipeline.get("status") or {})
    has_health = any(c.type == READY for c in status.conditions or ())
    if status.observed_generation == generation and status.conditions and has_health:
        return None
    raw_tasks = (pipeline.get("spec") or {}).get("tasks") or ()
    problem = pipeline_problem(pipeline.get("spec") or {})
    if problem is None:
        valid = _valid("True", "Valid", f"{len(raw_tasks)} tasks form a valid DAG", now)
    else:
        valid = _valid("False", problem.reason, problem.message, now)
    return status.model_copy(
        update={
            "observed_generation": generation,
            "task_count": len(raw_tasks),
            "conditions": set_condition(status.conditions, valid),
        }
    )
