"""Shell completion, the way kubectl (1.26+) asks a plugin for it: kubectl
runs ``kubectl_complete-sluice ARGS... WORD`` and reads candidate lines, then
``:4`` (cobra's "no file completion" directive). So ``kubectl sluice <TAB>``
completes commands, flags, and the names of runs, pipelines, tasks, params,
namespaces and contexts, with the user's kubeconfig.

Which kind of name fits where is decided by ``candidates`` (pure); the names
themselves come from a ``Names`` source. Completion never prints an error:
a name it cannot list is simply not offered.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sluice.cli.arguments import COMMANDS, VALUE_FLAGS
from sluice.cli.output import FORMATS

NO_FILE_COMPLETION = ":4"
_RUN_COMMANDS = {"graph", "logs", "cancel", "rerun"}
# What -o takes, per command (as its parser says).
_OUTPUTS = {
    "list": FORMATS,
    "ls": FORMATS,
    "graph": ("json", "yaml"),
    "start": ("name", "json", "yaml"),
    "rerun": ("name", "json", "yaml"),
}
_FLAGS = {
    "": ["--namespace", "--context", "--kubeconfig", "--color", "--help"],
    "list": ["--all-namespaces", "--selector", "--pipeline", "--output"],
    "ls": ["--all-namespaces", "--selector", "--pipeline", "--output"],
    "graph": ["--watch", "--output"],
    "logs": ["--follow", "--attempt", "--instance"],
    "start": ["--param", "--name", "--wait", "--timeout", "--output"],
    "cancel": [],
    "rerun": ["--name", "--wait", "--timeout", "--output"],
}


class Names(Protocol):
    """Where names come from (the cluster, for the real thing)."""

    def runs(self) -> list[str]: ...
    def pipelines(self) -> list[str]: ...
    def tasks(self, run: str) -> list[str]: ...
    def params(self, pipeline: str) -> list[str]: ...
    def namespaces(self) -> list[str]: ...
    def contexts(self) -> list[str]: ...


@dataclass
class Parsed:
    command: str | None = None
    positionals: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)
    # The flag whose value is being typed, if any.
    pending: str | None = None


def parse_words(words: Sequence[str]) -> Parsed:
    parsed = Parsed()
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("-") and word != "-":
            name, sep, value = word.partition("=")
            if name in VALUE_FLAGS and not sep:
                if index + 1 < len(words):
                    parsed.flags[name] = words[index + 1]
                    index += 2
                    continue
                parsed.pending = name
            elif sep:
                parsed.flags[name] = value
        elif parsed.command is None:
            parsed.command = word
        else:
            parsed.positionals.append(word)
        index += 1
    return parsed


def _value_candidates(flag: str, parsed: Parsed, names: Names) -> list[str]:
    kind = VALUE_FLAGS[flag]
    sources: dict[str, Callable[[], list[str]]] = {
        "namespace": names.namespaces,
        "context": names.contexts,
        "pipeline": names.pipelines,
        "output": lambda: list(_OUTPUTS.get(parsed.command or "", ())),
        "color": lambda: ["auto", "always", "never"],
    }
    if kind == "param" and parsed.command == "start" and parsed.positionals:
        return [f"{name}=" for name in names.params(parsed.positionals[0])]
    return sources[kind]() if kind in sources else []


def candidates(words: Sequence[str], current: str, names: Names) -> list[str]:
    """What may come at ``current``, the word being typed after ``words``."""
    parsed = parse_words(words)
    if parsed.pending:
        found = _value_candidates(parsed.pending, parsed, names)
    elif current.startswith("-"):
        flag, sep, _ = current.partition("=")
        if sep and flag in VALUE_FLAGS:
            values = _value_candidates(flag, parsed, names)
            return [f"{flag}={v}" for v in values if f"{flag}={v}".startswith(current)]
        found = _FLAGS[""] + _FLAGS.get(parsed.command or "", [])
    elif parsed.command is None:
        found = list(COMMANDS)
    elif parsed.command in _RUN_COMMANDS and not parsed.positionals:
        found = names.runs()
    elif parsed.command == "logs" and len(parsed.positionals) == 1:
        found = names.tasks(parsed.positionals[0])
    elif parsed.command == "start" and not parsed.positionals:
        found = names.pipelines()
    else:
        found = []
    return sorted(name for name in set(found) if name.startswith(current))


class ClusterNames:
    """Names read with the user's kubeconfig; anything refused is no names."""

    def __init__(self, parsed: Parsed) -> None:
        self._parsed = parsed
        self._session: object | None = None

    def _connect(self) -> Any:
        from sluice.cli.connection import connect  # noqa: PLC0415

        if self._session is None:
            flags = self._parsed.flags
            self._session = connect(
                flags.get("--kubeconfig"), flags.get("--context"), flags.get("-n") or flags.get("--namespace")
            )
        return self._session

    def _names(self, plural: str) -> list[str]:
        return [str(obj["metadata"]["name"]) for obj in self._connect().list(plural)]

    def runs(self) -> list[str]:
        return self._names("pipelineruns")

    def pipelines(self) -> list[str]:
        return self._names("pipelines")

    def tasks(self, run: str) -> list[str]:
        from sluice.views.run_view import run_view  # noqa: PLC0415

        return [task.name for task in run_view(self._connect().get("pipelineruns", run)).tasks]

    def params(self, pipeline: str) -> list[str]:
        spec = self._connect().get("pipelines", pipeline).get("spec") or {}
        return [str(p.get("name")) for p in spec.get("params") or ()]

    def namespaces(self) -> list[str]:
        import json  # noqa: PLC0415

        response = self._connect().core.list_namespace(_preload_content=False)
        return [str(ns["metadata"]["name"]) for ns in json.loads(response.data).get("items") or ()]

    def contexts(self) -> list[str]:
        from sluice.cli.connection import config  # noqa: PLC0415

        found, _ = config.list_kube_config_contexts(config_file=self._parsed.flags.get("--kubeconfig"))
        return [str(c["name"]) for c in found]


class _Quiet:
    """Wraps a Names source so any failure (no cluster, RBAC) yields nothing."""

    def __init__(self, inner: Names) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Callable[..., list[str]]:
        method = getattr(self._inner, name)

        def call(*args: str) -> list[str]:
            try:
                return list(method(*args))
            except Exception:
                return []

        return call


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["__complete"]:
        args = args[1:]
    words, current = (args[:-1], args[-1]) if args else ([], "")
    names = cast(Names, _Quiet(ClusterNames(parse_words(words))))
    for candidate in candidates(words, current, names):
        print(candidate)
    print(NO_FILE_COMPLETION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
