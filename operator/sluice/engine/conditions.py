"""metav1.Condition values, built and merged one way for every kind (pure).

Every kind also carries the conditions GitOps tools read (kstatus, which
Flux uses, and the Argo CD health checks in docs/): ``Ready``, always, and
``Reconciling`` or ``Stalled`` only while True (kstatus's "abnormal-true"
conventions). They are derived here, whenever any other condition is set,
from the kind's own conditions, so no write path can leave them stale:

- ``Stalled``: it cannot go on without someone acting: a run or Backfill
  that failed or was cancelled (``Succeeded=False``), an invalid Pipeline
  (``Valid=False``), an asset it may not read (``AssetsReadable=False``),
  or a refused API call (``Blocked=True``). Reason and message are theirs.
- ``Reconciling``: work is under way (``Succeeded=Unknown``: pending or running).
- ``Ready``: ``True`` once a run succeeded, or a Pipeline is valid and nothing stalls it.
"""

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


READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
HEALTH = frozenset({READY, RECONCILING, STALLED})
# (type, status) of a kind's own conditions that mean "stalled", in the order
# they are reported when several hold.
_STALLING = (("Blocked", "True"), ("Succeeded", "False"), ("Valid", "False"), ("AssetsReadable", "False"))
# A derived condition repeats its source's message only this far: a failed
# 5,000-task run's message is long, and the status must fit in etcd.
_DERIVED_MESSAGE = 512


def set_condition(conditions: list[Condition] | None, new: Condition) -> list[Condition]:
    """Replace the condition of the same type in place (so the list's order,
    which a status comparison sees, is stable), keeping lastTransitionTime
    if the status did not change (the metav1.Condition contract); then
    derive the health conditions from the result.
    """
    merged = _replace(conditions, new)
    return merged if new.type in HEALTH else with_health(merged, new.last_transition_time)


def with_health(conditions: list[Condition], now: str) -> list[Condition]:
    """``conditions`` with Ready, Reconciling and Stalled as they follow from the others."""
    by_type = {c.type: c for c in conditions if c.type not in HEALTH}
    if not by_type:
        return conditions
    stalled = next(
        (by_type[kind] for kind, status in _STALLING if kind in by_type and by_type[kind].status == status),
        None,
    )
    outcome = by_type.get("Succeeded")
    reconciling = outcome if stalled is None and outcome is not None and outcome.status == "Unknown" else None
    if stalled is not None:
        ready = condition(READY, "False", stalled.reason, stalled.message, now)
    elif reconciling is not None:
        ready = condition(READY, "False", reconciling.reason, reconciling.message, now)
    elif outcome is not None:
        ready = condition(READY, "True", outcome.reason, outcome.message, now)
    else:
        valid = by_type.get("Valid")
        ready = condition(READY, "True" if valid is not None else "Unknown", *_about(valid), now)
    ready = _short(ready)
    result = _replace(conditions, ready)
    for kind, source in ((STALLED, stalled), (RECONCILING, reconciling)):
        if source is None:
            result = [c for c in result if c.type != kind]
        else:
            result = _replace(result, _short(condition(kind, "True", source.reason, source.message, now)))
    return result


def _short(derived: Condition) -> Condition:
    if len(derived.message) <= _DERIVED_MESSAGE:
        return derived
    return derived.model_copy(update={"message": derived.message[: _DERIVED_MESSAGE - 3] + "..."})


def _about(source: Condition | None) -> tuple[str, str]:
    return (source.reason, source.message) if source is not None else ("Unknown", "not looked at yet")


def _replace(conditions: list[Condition] | None, new: Condition) -> list[Condition]:
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
