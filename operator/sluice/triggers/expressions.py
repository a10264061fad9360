"""Taking values from an event: ``$(body.PATH)`` and ``$(header.NAME)``.

A Trigger maps parts of an event to run params with templates such as
``s3://$(body.Records[0].s3.bucket.name)/$(body.Records[0].s3.object.key)``.
This is lookup, never evaluation: a PATH is field names and list indexes,
nothing in the event is ever run or expanded again, and what a template
cannot find is an error naming the path (the sender learns what is wrong,
the run never starts with a hole in a param).

Grammar::

    reference := "$(" ( "body" path? | "header." NAME ) ")"
    path      := ( "." FIELD | "[" INDEX "]" )+
    FIELD     := [A-Za-z0-9_-]+        INDEX := [0-9]+
    NAME      := [A-Za-z0-9-]+         (case-insensitive, as HTTP headers are)

Strings are inserted as they are; numbers, booleans, null, objects and
lists as compact JSON. ``$(body)`` is the whole body as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

REFERENCE = re.compile(r"\$\(([^()]*)\)")
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[([0-9]+)\]")
_HEADER = re.compile(r"^header\.([A-Za-z0-9-]+)$")
MAX_VALUE_BYTES = 4096


class MappingError(ValueError):
    """A template names something the event does not have, or is malformed."""


def check_template(template: str) -> None:
    """Raise MappingError for a template no event could satisfy (bad syntax)."""
    for match in REFERENCE.finditer(template):
        _parse(match.group(1))


def headers_named(template: str) -> set[str]:
    """The headers (lower case) a template reads."""
    found = set()
    for match in REFERENCE.finditer(template):
        header = _HEADER.match(match.group(1))
        if header:
            found.add(header.group(1).lower())
    return found


def _parse(expression: str) -> tuple[str, list[str | int]]:
    if expression == "body":
        return "body", []
    if expression.startswith(("body.", "body[")):
        rest, steps, position = expression[4:], [], 0
        for step in _PATH_STEP.finditer(rest):
            if step.start() != position:
                break
            steps.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
            position = step.end()
        if position == len(rest) and steps:
            return "body", steps
        raise MappingError(f"$({expression}): a body path is .FIELD and [INDEX] steps, e.g. body.items[0].id")
    header = _HEADER.match(expression)
    if header:
        return "header", [header.group(1).lower()]
    raise MappingError(f"$({expression}): use $(body.PATH) or $(header.NAME)")


def _lookup(body: Any, steps: list[str | int], expression: str) -> Any:
    value = body
    walked = "body"
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                size = f"a list of {len(value)}" if isinstance(value, list) else _kind(value)
                raise MappingError(f"$({expression}): {walked} is {size}, it has no [{step}]")
            value = value[step]
            walked += f"[{step}]"
        else:
            if not isinstance(value, dict) or step not in value:
                raise MappingError(f"$({expression}): {walked} has no field {step!r} ({_kind(value)})")
            value = value[step]
            walked += f".{step}"
    return value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object with " + (", ".join(sorted(value)[:10]) or "no fields")
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "a " + type(value).__name__.replace("NoneType", "null")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render(template: str, body: Any, headers: Mapping[str, str]) -> str:
    """``template`` with each reference replaced by what the event holds.
    ``headers`` must be keyed in lower case.
    """

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        source, steps = _parse(expression)
        if source == "header":
            name = str(steps[0])
            if name not in headers:
                raise MappingError(f"$({expression}): the request has no {name} header")
            return headers[name]
        return _text(_lookup(body, steps, expression))

    rendered = REFERENCE.sub(value, template)
    if len(rendered.encode()) > MAX_VALUE_BYTES:
        raise MappingError(f"{template!r} gives {len(rendered.encode())} bytes, past {MAX_VALUE_BYTES}")
    return rendered
