"""`start` and `rerun`: what is created, and what is refused before asking."""

from __future__ import annotations

import pytest

from sluice.cli.connection import UsageError
from sluice.cli.run_request import check_params, parse_params, rerun_body, rerun_refusal, start_body
from sluice.views.run_view import run_view
from tests.unit.cli.runs import run_object, spec_task

SPEC = {"params": [{"name": "day"}, {"name": "region", "default": "eu"}], "tasks": [spec_task("a")]}


def test_params_are_name_value_pairs_and_values_may_hold_equals() -> None:
    assert parse_params(["day=2026-01-01", "filter=a=b", "empty="]) == [
        ("day", "2026-01-01"),
        ("filter", "a=b"),
        ("empty", ""),
    ]
    with pytest.raises(UsageError, match='"day" is not NAME=VALUE'):
        parse_params(["day"])
    with pytest.raises(UsageError, match='"day" is given twice'):
        parse_params(["day=1", "day=2"])


def test_unknown_and_missing_params_are_refused_with_the_pipelines_params() -> None:
    with pytest.raises(UsageError, match=r"has no param dya \(its params: day, region\)"):
        check_params("etl", SPEC, [("dya", "1")])
    with pytest.raises(UsageError, match="needs a value for day: -p day=VALUE"):
        check_params("etl", SPEC, [("region", "us")])
    check_params("etl", SPEC, [("day", "2026-01-01")])


def test_start_generates_a_name_from_the_pipeline_within_limits() -> None:
    body = start_body("etl", [("day", "1")])
    assert body["metadata"] == {"generateName": "etl-"}
    assert body["spec"] == {"pipelineRef": {"name": "etl"}, "params": [{"name": "day", "value": "1"}]}
    long = start_body("p" * 80, [])
    assert len(long["metadata"]["generateName"]) + 5 <= 63
    assert start_body("etl", [], name="etl-manual")["metadata"] == {"name": "etl-manual"}


def test_rerun_only_of_a_finished_unsuccessful_run_and_names_do_not_pile_up() -> None:
    failed = run_view(run_object([spec_task("a")], [], phase="Failed", completionTime="2026-11-24T10:01:00Z"))
    assert rerun_refusal(failed) is None
    assert rerun_body(failed)["spec"] == {"rerunOf": {"name": "etl-1"}}
    assert rerun_body(failed)["metadata"] == {"generateName": "etl-1-rerun-"}
    again = run_view(
        run_object([], [], name="etl-1-rerun-x7k2p", phase="Failed", completionTime="2026-11-24T10:01:00Z")
    )
    assert rerun_body(again)["metadata"] == {"generateName": "etl-1-rerun-"}
    running = run_view(run_object([spec_task("a")], [], phase="Running"))
    assert "is Running: only a finished run can be rerun" in (rerun_refusal(running) or "")
    done = run_view(
        run_object([spec_task("a")], [], phase="Succeeded", completionTime="2026-11-24T10:01:00Z")
    )
    assert "start a new run instead: kubectl sluice start etl" in (rerun_refusal(done) or "")
