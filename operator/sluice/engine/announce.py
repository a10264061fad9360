"""Events a plan asks the reconciler to post (pure data).

Why plans carry them: what to tell the user is a decision like any other, so
it is made (and unit-tested) with the rest of the plan; the reconciler only
posts them, after the status they describe is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Announcement:
    """One Kubernetes Event on the object the plan is about."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def normal(reason: str, message: str) -> Announcement:
    return Announcement("Normal", reason, message)


def warning(reason: str, message: str) -> Announcement:
    return Announcement("Warning", reason, message)
