"""`when` expressions: run a task only if its inputs match (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.api.v1alpha1 import WhenExpression
from sluice.engine.params import substitute


def evaluate_when(expressions: list[WhenExpression] | None, variables: Mapping[str, str]) -> str | None:
    """None when every expression holds, else a message saying which did not."""
    for expression in expressions or ():
        value = substitute(expression.input, variables)
        values = [substitute(v, variables) for v in expression.values]
        holds = (value in values) if expression.operator == "in" else (value not in values)
        if not holds:
            return f'when: "{value}" {expression.operator} {values} is false (input {expression.input})'
    return None
