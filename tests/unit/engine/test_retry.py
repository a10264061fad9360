from datetime import UTC, datetime

from sluice.api.v1alpha1 import Backoff, RetryPolicy
from sluice.engine.observe import TaskObservation
from sluice.engine.retry import backoff_seconds, next_retry

FAILED_AT = "2026-11-24T10:00:00Z"
NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)


def failed(attempt: int) -> TaskObservation:
    return TaskObservation("job", "Failed", completion_time=FAILED_AT, attempt=attempt, message="boom")


def test_backoff_grows_by_factor_and_is_capped() -> None:
    backoff = Backoff(initial_seconds=10, factor=3, max_seconds=60)
    assert [backoff_seconds(backoff, n) for n in (1, 2, 3, 4)] == [10, 30, 60, 60]


def test_retry_is_due_after_the_backoff_from_the_failure_time() -> None:
    policy = RetryPolicy(limit=2, backoff=Backoff(initial_seconds=10, factor=2, max_seconds=300))
    first = next_retry(policy, failed(0), NOW)
    assert first is not None
    assert first.attempt == 1
    assert first.due == datetime(2026, 11, 24, 10, 0, 10, tzinfo=UTC)
    second = next_retry(policy, failed(1), NOW)
    assert second is not None
    assert second.due == datetime(2026, 11, 24, 10, 0, 20, tzinfo=UTC)


def test_no_retry_once_the_limit_is_spent_or_without_a_policy_or_on_success() -> None:
    policy = RetryPolicy(limit=2)
    assert next_retry(policy, failed(2), NOW) is None
    assert next_retry(None, failed(0), NOW) is None
    assert next_retry(policy, TaskObservation("job", "Succeeded"), NOW) is None
