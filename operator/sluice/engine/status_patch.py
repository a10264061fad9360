"""The merge patch that writes a status computed by a plan (pure).

Conditional on the resourceVersion the plan read, so a status computed from
a stale view is refused (409) and recomputed instead of overwriting newer
facts. A merge patch leaves out what it does not name, so fields the new
status dropped are cleared by naming them with null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sluice.api.v1alpha1 import ApiModel


def conditional_status_patch(
    obj: Mapping[str, Any], status: ApiModel, clearable: Iterable[str] = ()
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "status": status.to_api(),
    }
    for name in clearable:
        body["status"].setdefault(name, None)
    return body
