"""The one error the engine raises: a pipeline the schema accepted but that cannot run.

Why one type: every check that the CRD schema cannot express (a cycle, an
unknown dependency, an unbound param, a cron the parser refuses) ends the same
way, as a reason and a message in a condition, so callers catch one thing.
"""

from __future__ import annotations


class InvalidPipeline(ValueError):
    """``reason`` is a CamelCase machine-readable word for the condition; ``message`` says what to fix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
