"""Why the operator could not act on an object, shown on the object itself.

A 403 (the operator's RBAC lacks a verb) or a 400/422 (the API server or an
admission webhook refuses what the operator sends) does not go away by
retrying: someone must act. The operator keeps retrying with backoff (the
permission may be granted), and meanwhile the object carries a ``Blocked``
condition and a Warning Event that name the verb and resource, so the user
looking at `kubectl describe` learns why nothing moves. The next pass that
completes turns the condition back to False. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.api.v1alpha1 import Condition
from sluice.engine.announce import Announcement, warning
from sluice.engine.conditions import condition, set_condition

BLOCKED = "Blocked"
REASONS = {403: "Forbidden", 422: "Invalid", 400: "BadRequest", 409: "NameTaken"}


@dataclass(frozen=True)
class Refusal:
    """One API call the API server refused for good."""

    status: int
    verb: str
    resource: str
    namespace: str
    message: str

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, "Refused")

    @property
    def by_rbac(self) -> bool:
        """A 403 from authorization, not from a quota or an admission plugin
        (those are 403s too, and no RBAC rule would help).
        """
        return self.status == 403 and f"cannot {self.verb} resource" in self.message

    def describe(self) -> str:
        where = f' in namespace "{self.namespace}"' if self.namespace else ""
        if self.status == 409:  # a name taken by an object not ours: the message says which
            return f"could not {self.verb} {self.resource}{where}: {self.message}"
        if self.by_rbac:
            return (
                f"the operator may not {self.verb} {self.resource}{where}: grant it in the "
                f"operator's RBAC (the Helm chart's Role or ClusterRole); API server: {self.message}"
            )
        return f"the API server refused to {self.verb} {self.resource}{where}: {self.message}"


def blocked_conditions(conditions: list[Condition] | None, refusal: Refusal, now: str) -> list[Condition]:
    return set_condition(conditions, condition(BLOCKED, "True", refusal.reason, refusal.describe(), now))


def blocked_event(refusal: Refusal) -> Announcement:
    return warning(refusal.reason, refusal.describe())


def is_blocked(conditions: list[Condition] | None) -> bool:
    return any(c.type == BLOCKED and c.status == "True" for c in conditions or ())


def unblocked_conditions(conditions: list[Condition] | None, now: str) -> list[Condition] | None:
    """The conditions with Blocked turned False; None when it was not True.
    A plan returns this with its status: the status is written only after
    the pass's calls succeeded, so False is never written while still blocked.
    """
    if not is_blocked(conditions):
        return None
    done = condition(BLOCKED, "False", "Unblocked", "the operator's last pass did all it needed to", now)
    return set_condition(conditions, done)
