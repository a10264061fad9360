"""Printing objects as kubectl's ``-o json|yaml|name`` would, so scripts that
read kubectl's output read ours the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

FORMATS = ("json", "yaml", "name", "wide")


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    """managedFields, as kubectl get hides them by default."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


def print_objects(objects: Sequence[dict[str, Any]], fmt: str, out: TextIO, single: bool = False) -> None:
    """``objects`` as one object (``single``) or a v1 List, or their names."""
    if fmt == "name":
        for obj in objects:
            kind = str(obj.get("kind", "")).lower()
            group = str(obj.get("apiVersion", "")).split("/")[0]
            out.write(f"{kind}.{group}/{obj['metadata']['name']}\n")
        return
    clean = [_strip(obj) for obj in objects]
    document: Any = clean[0] if single and clean else {"apiVersion": "v1", "kind": "List", "items": clean}
    if fmt == "json":
        out.write(json.dumps(document, indent=4, ensure_ascii=False) + "\n")
    else:
        out.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
