"""Script tasks: a multi-line ``script`` run instead of ``command`` (pure).

Why references never become script text: a param or an upstream result
pasted into a shell script is code (``x; rm -rf /``). In a shell script each
``$(params.day)`` is rewritten to ``${SLUICE_PARAMS_DAY}``, an environment
variable the pod carries with the value as data, so whatever the value
holds, the shell only ever expands it. Other interpreters (a ``#!`` line
naming python3, perl...) have their own syntax for that, so a reference
there is refused at validation with how to pass the value instead: an
``env`` entry, read as the interpreter reads the environment.

How it runs: a script without ``#!`` is the argument of ``/bin/sh -c``; one
with ``#!`` is written by ``/bin/sh`` to an emptyDir and executed, so its
interpreter line is honoured as a file's is (the root filesystem may be
read-only). Either way the image needs ``/bin/sh``. Everything put where the
kubelet expands ``$(VAR)`` has its ``$`` doubled, so a script's own
``$(date)`` or ``$$`` reaches the shell unchanged.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sluice.api.v1alpha1 import TaskSpec
from sluice.engine.errors import InvalidPipeline

# In a script only Sluice's own namespaces are references: `$(date)` or
# `$(pwd)` is the shell's command substitution and stays the script's.
REFERENCE = re.compile(r"\$\(((?:params|tasks|context|matrix)\.[A-Za-z0-9_.-]+)\)")
SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "busybox"})
SCRIPT_DIR = "/sluice/script"
SCRIPT_VOLUME = "sluice-script"
SCRIPT_ENV = "SLUICE_SCRIPT"
ARGV0 = "sluice-script"
# Writes the script to the emptyDir and runs it, so its #! line is honoured.
LAUNCHER = (
    f'umask 077 && printf "%s\\n" "${SCRIPT_ENV}" > {SCRIPT_DIR}/run && '
    f'chmod u+x {SCRIPT_DIR}/run && exec {SCRIPT_DIR}/run "$@"'
)


def interpreter(script: str) -> str | None:
    """The program a ``#!`` line names (``env``'s argument when it is env),
    or None when the script has no such line and runs with /bin/sh.
    """
    if not script.startswith("#!"):
        return None
    words = script[2:].splitlines()[0].split()
    if not words:
        return None
    program = posixpath.basename(words[0])
    if program == "env":
        rest = [word for word in words[1:] if not word.startswith("-")]
        program = posixpath.basename(rest[0]) if rest else program
    return program


def is_shell(script: str) -> bool:
    program = interpreter(script)
    return program is None or program in SHELLS


def env_name(variable: str, taken: set[str]) -> str:
    """The environment variable carrying ``$(variable)``: SLUICE_ and the
    name in capitals, underscores for anything else; numbered on a clash.
    """
    base = "SLUICE_" + re.sub(r"[^A-Z0-9]", "_", variable.upper())
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def check_script(task: TaskSpec) -> None:
    """Raise InvalidPipeline for a script beside a command (the CRD refuses
    it too; a Pipeline made before that rule must not run one silently), or
    a reference in a script that cannot take one.
    """
    script = task.script
    if script is not None and task.command is not None:
        raise InvalidPipeline("InvalidScript", f'task "{task.name}" has both script and command: keep one')
    if script is None or is_shell(script):
        return
    match = REFERENCE.search(script)
    if match is not None:
        raise InvalidPipeline(
            "InvalidScript",
            f'task "{task.name}" script runs with {interpreter(script)} and references $({match.group(1)}): '
            "only shell scripts get references (as environment variables); give the value to the task "
            f"as an env entry (name: MY_VALUE, value: $({match.group(1)})) and read it from the environment",
        )


@dataclass(frozen=True)
class RenderedScript:
    """What a script task's container runs: its command, the environment
    variables carrying its references and the script, and whether it needs
    the emptyDir it is written to.
    """

    command: list[str]
    env: list[tuple[str, str]]  # (name, value): values are data, substituted already
    needs_volume: bool


def render_script(script: str, variables: Mapping[str, str], taken: Iterable[str] = ()) -> RenderedScript:
    """The container's command and environment for ``script`` (``taken``:
    the task's own environment variables, which a carrier never replaces).
    Values in ``env`` are raw: the caller escapes them for the kubelet as any
    value.
    """
    carriers: dict[str, str] = {}
    taken = set(taken)

    def carrier(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable not in variables:
            return match.group(0)
        if variable not in carriers:
            carriers[variable] = env_name(variable, taken)
        return "${" + carriers[variable] + "}"

    text = REFERENCE.sub(carrier, script) if is_shell(script) else script
    env = [(name, variables[variable]) for variable, name in carriers.items()]
    if interpreter(script) is None:
        return RenderedScript(["/bin/sh", "-c", kubelet_literal(text), ARGV0], env, False)
    return RenderedScript(
        ["/bin/sh", "-c", kubelet_literal(LAUNCHER), ARGV0], [*env, (SCRIPT_ENV, text)], True
    )


def kubelet_literal(text: str) -> str:
    """``text`` as the kubelet passes it on: it expands ``$(VAR)`` in a
    container's command, args and env values, and turns ``$$`` into ``$``.
    """
    return text.replace("$", "$$")
