"""A Backfill's passes, replayed against an in-memory API: which runs it
creates, in which order, how many at once, and what its status says.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.engine.admission import peer_run
from sluice.engine.backfill_plan import BackfillFacts, plan_backfill

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def pipeline(schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"tasks": [{"name": "a", "image": "busybox:1.36"}]}
    if schedule is not None:
        spec["schedule"] = copy.deepcopy(schedule)
    return {"metadata": {"name": "sales", "namespace": "etl", "uid": "p-uid"}, "spec": spec}


class Replay:
    def __init__(self, spec: dict[str, Any], source: dict[str, Any] | None) -> None:
        self.backfill: dict[str, Any] = {
            "metadata": {"name": "jan", "namespace": "etl", "uid": "b-uid", "generation": 1},
            "spec": {"pipelineRef": {"name": "sales"}, **spec},
            "status": {},
        }
        self.pipeline = source
        self.runs: dict[str, dict[str, Any]] = {}
        self.most_active = 0
        self.order: list[str] = []
        self.events: list[str] = []

    def add_run(self, name: str, scheduled: str, phase: str, **labels: str) -> None:
        self.runs[name] = {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"sluice.dev/scheduled-time": scheduled},
            },
            "spec": {},
            "status": {"phase": phase},
        }

    def active(self) -> list[str]:
        return [n for n, r in self.runs.items() if r["status"].get("phase") in (None, "Pending", "Running")]

    def step(self) -> None:
        facts = BackfillFacts(
            self.backfill, self.pipeline, tuple(peer_run(r) for r in self.runs.values()), NOW
        )
        plan = plan_backfill(facts)
        for name in plan.cancels:
            self.runs[name]["spec"]["cancelled"] = True
        for body in plan.creates:
            assert body["metadata"]["name"] not in self.runs, "created twice"
            self.runs[body["metadata"]["name"]] = {**body, "status": {"phase": "Running"}}
            self.order.append(body["metadata"]["annotations"]["sluice.dev/scheduled-date"])
        if plan.status is not None:
            self.backfill["status"] = plan.status.to_api()
        self.events += [e.reason for e in plan.events]
        self.most_active = max(self.most_active, len(self.active()))

    def begin(self) -> None:
        """The first pass records the schedule, creates nothing, and asks for another pass."""
        facts = BackfillFacts(self.backfill, self.pipeline, (), NOW)
        plan = plan_backfill(facts)
        assert plan.creates == () and plan.wake_after == 0
        self.step()
        assert self.order == [] and self.status["schedule"]

    def finish(self, count: int, phase: str = "Succeeded") -> None:
        for name in self.active()[:count]:
            self.runs[name]["status"] = {"phase": phase}

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.backfill["status"]
        return status


DAILY = {
    "cron": "0 0 * * *",
    "timezone": "UTC",
    "params": [{"name": "day", "value": "$(context.scheduledDate)"}],
}
JANUARY = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}


def test_a_31_day_daily_backfill_runs_every_date_once_oldest_first_never_more_than_3_at_once() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 3}, pipeline(DAILY))
    replay.begin()
    for turn in range(100):
        replay.step()
        if replay.status.get("phase") == "Succeeded":
            break
        replay.finish(1 + turn % 3)  # runs end one, two or three at a time
    assert replay.status["phase"] == "Succeeded"
    assert replay.most_active == 3
    expected = [
        (datetime(2026, 1, 2, tzinfo=UTC) + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(31)
    ]
    assert replay.order == expected  # Jan 2 .. Feb 1: the intervals [Jan 1, Jan 2] .. [Jan 31, Feb 1]
    assert (replay.status["total"], replay.status["done"], replay.status["failed"]) == (31, 31, 0)
    assert replay.status["outcomes"] == "S" * 31
    assert replay.events == ["Started", "Succeeded"]
    first = replay.runs[next(iter(replay.runs))]
    assert first["spec"]["dataInterval"] == {
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-02T00:00:00+00:00",
    }
    assert first["spec"]["params"] == [{"name": "day", "value": "2026-01-02"}]
    assert first["metadata"]["ownerReferences"][0]["uid"] == "p-uid"


def test_intervals_already_loaded_are_skipped_unless_asked_and_failures_are_counted() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 31}, pipeline(DAILY))
    replay.begin()
    replay.add_run("sales-202601030000", "2026-01-03T00:00:00Z", "Succeeded")
    replay.add_run("sales-202601040000", "2026-01-04T00:00:00Z", "Failed")  # failed: load it again
    replay.step()
    assert len(replay.order) == 30 and "2026-01-03" not in replay.order
    assert replay.status["alreadyLoaded"] == 1
    replay.finish(1, "Failed")
    replay.finish(29)
    replay.step()
    assert replay.status["phase"] == "Failed"
    assert (replay.status["done"], replay.status["failed"], replay.status["total"]) == (30, 1, 31)
    assert replay.events[-1] == "RunsFailed"

    again = Replay({**JANUARY, "maxConcurrent": 31, "rerunSucceeded": True}, pipeline(DAILY))
    again.begin()
    again.add_run("sales-202601030000", "2026-01-03T00:00:00Z", "Succeeded")
    again.step()
    assert len(again.order) == 31


def test_recorded_outcomes_stand_after_the_runs_are_deleted() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 2}, pipeline(DAILY))
    replay.begin()
    replay.step()
    replay.finish(2)
    replay.step()
    replay.runs = {n: r for n, r in replay.runs.items() if r["status"]["phase"] != "Succeeded"}  # TTL
    replay.step()
    assert replay.order[:4] == ["2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"]
    assert len(replay.order) == 4  # the two deleted ones are not run again
    assert replay.status["done"] == 2


def test_cancelling_stops_creating_and_stops_its_runs() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 3}, pipeline(DAILY))
    replay.begin()
    replay.step()
    replay.backfill["spec"]["cancelled"] = True
    replay.step()
    assert all(r["spec"].get("cancelled") for r in replay.runs.values())
    assert replay.status["phase"] == "Cancelled" and "completionTime" not in replay.status
    assert (
        plan_backfill(
            BackfillFacts(
                replay.backfill, replay.pipeline, tuple(peer_run(r) for r in replay.runs.values()), NOW
            )
        ).cancels
        == ()
    )  # asked once: not asked again
    replay.finish(3, "Cancelled")
    replay.step()
    assert len(replay.order) == 3
    assert replay.status["completionTime"] and replay.events[-1] == "Cancelled"


def test_the_schedule_it_started_with_holds_when_the_pipelines_cron_changes() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 1}, pipeline(DAILY))
    replay.begin()
    replay.step()
    assert replay.pipeline is not None
    replay.pipeline["spec"]["schedule"]["cron"] = "0 * * * *"
    replay.finish(1)
    replay.step()
    assert replay.status["total"] == 31 and replay.order == ["2026-01-02", "2026-01-03"]


@pytest.mark.parametrize(
    ("source", "spec", "reason"),
    [
        (pipeline(None), JANUARY, "NoSchedule"),
        (pipeline({"cron": "0 0 1 1 *"}), JANUARY, "EmptyRange"),
        (
            pipeline({"cron": "* * * * *"}),
            {"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            "RangeTooLarge",
        ),
    ],
)
def test_a_backfill_that_cannot_run_fails_and_says_why(
    source: dict[str, Any], spec: dict[str, Any], reason: str
) -> None:
    replay = Replay(spec, source)
    replay.step()
    assert replay.status["phase"] == "Failed" and replay.order == []
    condition = replay.status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", reason)
    assert replay.events == [reason]


def test_a_backfill_waits_for_its_pipeline() -> None:
    replay = Replay(JANUARY, None)
    replay.step()
    assert replay.status["phase"] == "Pending"
    assert replay.status["conditions"][0]["reason"] == "PipelineNotFound"
    replay.pipeline = pipeline(DAILY)
    replay.begin()
    replay.step()
    assert replay.status["phase"] == "Running" and replay.order == ["2026-01-02"]


def test_a_run_deleted_before_it_ended_is_failed_not_run_again() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 1}, pipeline(DAILY))
    replay.begin()
    replay.step()
    [name] = replay.runs
    del replay.runs[name]  # deleted by hand while running
    replay.step()
    assert replay.order == ["2026-01-02", "2026-01-03"]  # January 2 not again
    assert replay.status["outcomes"].startswith("FR")
    assert replay.status["failed"] == 1


def test_an_interval_another_run_is_loading_waits_for_its_outcome() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 31}, pipeline(DAILY))
    # A scheduled run for January 3 (written with an offset) is still running.
    replay.add_run("sales-202601030000", "2026-01-03T01:00:00+01:00", "Running")
    replay.begin()
    facts = BackfillFacts(
        replay.backfill, replay.pipeline, tuple(peer_run(r) for r in replay.runs.values()), NOW
    )
    assert plan_backfill(facts).wake_after == 30
    replay.step()
    assert "2026-01-03" not in replay.order and len(replay.order) == 30
    assert replay.status["pending"] == 1
    replay.runs["sales-202601030000"]["status"] = {"phase": "Succeeded"}
    replay.step()
    assert replay.status["alreadyLoaded"] == 1 and replay.status["pending"] == 0


def test_intervals_that_have_not_ended_yet_wait_for_their_end() -> None:
    # NOW is 2026-11-26 12:00: of a range up to Nov 30, the intervals ending
    # Nov 24..26 (00:00) are loaded now, the rest when they end.
    replay = Replay(
        {"start": "2026-11-23T00:00:00Z", "end": "2026-11-30T00:00:00Z", "maxConcurrent": 10}, pipeline(DAILY)
    )
    replay.begin()
    facts = BackfillFacts(replay.backfill, replay.pipeline, (), NOW)
    plan = plan_backfill(facts)
    assert [b["metadata"]["annotations"]["sluice.dev/scheduled-date"] for b in plan.creates] == [
        "2026-11-24",
        "2026-11-25",
        "2026-11-26",
    ]
    assert plan.wake_after is not None and 12 * 3600 <= plan.wake_after < 12 * 3600 + 5  # Nov 27 00:00
    assert plan.status is not None and plan.status.pending == 4


def test_the_first_pass_goes_on_at_once_even_when_another_run_holds_an_interval() -> None:
    replay = Replay({**JANUARY, "maxConcurrent": 3}, pipeline(DAILY))
    replay.add_run("sales-202601020000", "2026-01-02T00:00:00Z", "Running")
    plan = plan_backfill(
        BackfillFacts(replay.backfill, replay.pipeline, tuple(peer_run(r) for r in replay.runs.values()), NOW)
    )
    assert plan.wake_after == 0
