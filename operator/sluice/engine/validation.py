"""What makes a Pipeline (or a run's inline pipeline) unable to run, checked
one way for every place that reports it: the Pipeline's ``Valid`` condition
and the validating admission webhook that refuses it at ``kubectl apply``.
One function, so the refusal and the condition always carry the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sluice.api.v1alpha1 import ParamValue, PipelineSpec
from sluice.engine.cron import CronSchedule
from sluice.engine.dag import build_graph
from sluice.engine.errors import InvalidPipeline
from sluice.engine.params import bind_params, check_references


@dataclass(frozen=True)
class Problem:
    """Why it cannot run: a condition reason and a message saying what to fix."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def pipeline_problem(raw_spec: Mapping[str, Any]) -> Problem | None:
    """A cycle, an unknown dependency, a bad ``$(...)`` reference, matrix or
    script, a cron the parser refuses; None for a pipeline that can run.
    """
    try:
        spec = PipelineSpec.model_validate(raw_spec)
        check_references(spec, build_graph(spec))
        if spec.schedule is not None and spec.schedule.cron:
            CronSchedule.parse(spec.schedule.cron, spec.schedule.timezone)
    except InvalidPipeline as error:
        return Problem(error.reason, error.message)
    except ValidationError as error:
        return Problem("InvalidSpec", str(error))
    return None


def inline_run_problem(raw_run_spec: Mapping[str, Any]) -> Problem | None:
    """For a run that brings its own ``pipelineSpec``: that pipeline's
    problem, or params it does not declare or leaves unset. A run naming a
    Pipeline is checked when it starts (the Pipeline may come later).
    """
    inline = raw_run_spec.get("pipelineSpec")
    if not isinstance(inline, Mapping):
        return None
    problem = pipeline_problem(inline)
    if problem is not None:
        return problem
    try:
        given = [ParamValue.model_validate(p) for p in raw_run_spec.get("params") or ()]
        bind_params(PipelineSpec.model_validate(inline), given)
    except InvalidPipeline as error:
        return Problem(error.reason, error.message)
    except ValidationError as error:
        return Problem("InvalidSpec", str(error))
    return None
