"""Shell completion: which names fit where on the command line."""

from __future__ import annotations

from sluice.cli.completion import candidates


class Names:
    def runs(self) -> list[str]:
        return ["etl-1", "etl-2", "report-1"]

    def pipelines(self) -> list[str]:
        return ["etl", "report"]

    def tasks(self, run: str) -> list[str]:
        return ["extract", "load"] if run == "etl-1" else []

    def params(self, pipeline: str) -> list[str]:
        return ["day", "region"] if pipeline == "etl" else []

    def namespaces(self) -> list[str]:
        return ["default", "etl"]

    def contexts(self) -> list[str]:
        return ["kind-dev", "prod"]


NAMES = Names()


def test_commands_then_the_names_each_takes() -> None:
    assert candidates([], "", NAMES) == ["cancel", "graph", "list", "logs", "rerun", "start"]
    assert candidates([], "l", NAMES) == ["list", "logs"]
    assert candidates(["graph"], "etl", NAMES) == ["etl-1", "etl-2"]
    assert candidates(["logs", "etl-1"], "", NAMES) == ["extract", "load"]
    assert candidates(["logs", "etl-1", "load"], "", NAMES) == []
    assert candidates(["start"], "", NAMES) == ["etl", "report"]


def test_flag_values_namespace_context_and_params() -> None:
    assert candidates(["-n"], "", NAMES) == ["default", "etl"]
    assert candidates(["list", "--context"], "p", NAMES) == ["prod"]
    assert candidates(["start", "etl", "-p"], "", NAMES) == ["day=", "region="]
    assert candidates(["list"], "--output=y", NAMES) == ["--output=yaml"]
    # a flag and its value are not positionals
    assert candidates(["-n", "etl", "logs", "etl-1"], "e", NAMES) == ["extract"]


def test_flags_of_the_command() -> None:
    assert "--follow" in candidates(["logs"], "--", NAMES)
    assert "--wait" not in candidates(["logs"], "--", NAMES)
    assert candidates(["start", "etl"], "--w", NAMES) == ["--wait"]
