"""Reading Kubernetes object metadata the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resource_version(obj: Mapping[str, Any]) -> int:
    """The object's resourceVersion as a number, to tell a newer copy from an
    older one (a watch event arriving after our own write's answer, a list
    interleaving with a watch); 0 when absent or not numeric.
    """
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
