"""Retry decisions for failed task attempts (pure, no I/O).

Each attempt is its own pod, so a retry is "create the pod of attempt n+1
once its backoff has passed": the wait is computed from the failed attempt's
completion time, and survives operator restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sluice.api.v1alpha1 import Backoff, RetryPolicy
from sluice.engine.clock import parse_time
from sluice.engine.observe import TaskObservation


def backoff_seconds(backoff: Backoff | None, retry_number: int) -> float:
    """Delay before retry ``retry_number`` (1 = the first retry)."""
    policy = backoff or Backoff()
    delay = policy.initial_seconds * policy.factor ** (retry_number - 1)
    return float(min(delay, policy.max_seconds))


# Failures that another attempt would only repeat: the API server refused the
# task's pod, a result it reads was never written, or its own results broke a
# size limit. These end the task whatever its retry policy.
FINAL_FAILURE_REASONS = frozenset(
    {"PodRejected", "PodNameTaken", "MissingResult", "ResultTooLarge", "ResultsOverBudget"}
)


@dataclass(frozen=True)
class Retry:
    attempt: int  # the attempt to start (1 = the first retry)
    due: datetime


def next_retry(policy: RetryPolicy | None, latest: TaskObservation, now: datetime) -> Retry | None:
    """The retry owed for a failed latest attempt, or None if the failure is final."""
    if policy is None or latest.phase != "Failed" or latest.attempt >= policy.limit:
        return None
    if latest.reason in FINAL_FAILURE_REASONS:
        return None
    failed_at = parse_time(latest.completion_time) if latest.completion_time else now
    attempt = latest.attempt + 1
    return Retry(attempt, failed_at + timedelta(seconds=backoff_seconds(policy.backoff, attempt)))
