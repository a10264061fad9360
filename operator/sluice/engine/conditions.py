"""metav1.Condition values, built and merged one way for every kind (pure)."""

from __future__ import annotations

from sluice.api.v1alpha1 import Condition


def condition(kind: str, status: str, reason: str, message: str, now: str) -> Condition:
    """A metav1.Condition; ``set_condition`` keeps its transition time when the status holds."""
    return Condition.model_validate(
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }
    )


def set_condition(conditions: list[Condition] | None, new: Condition) -> list[Condition]:
    """Replace the condition of the same type in place (so the list's order,
    which a status comparison sees, is stable), keeping lastTransitionTime
    if the status did not change (the metav1.Condition contract).
    """
    result = []
    placed = False
    for existing in conditions or ():
        if existing.type == new.type:
            if existing.status == new.status:
                new = new.model_copy(update={"last_transition_time": existing.last_transition_time})
            if not placed:
                result.append(new)
                placed = True
            continue
        result.append(existing)
    if not placed:
        result.append(new)
    return result
