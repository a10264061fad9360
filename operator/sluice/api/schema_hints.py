"""Kubernetes OpenAPI extensions attached to pydantic fields.

Pydantic knows nothing of list-map keys or int-or-string; these helpers put
the Kubernetes extensions into a field's ``json_schema_extra`` so the CRD
generator can carry them into the structural schema.
"""

from __future__ import annotations

from typing import Any

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def dns_label(max_length: int) -> dict[str, Any]:
    """A lower-case RFC 1123 name (a label, or a subdomain when longer than 63)."""
    pattern = DNS_LABEL_PATTERN if max_length <= 63 else DNS_SUBDOMAIN_PATTERN
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": pattern}


def list_map(*keys: str) -> dict[str, Any]:
    """A list whose items are unique by ``keys``; the API server rejects duplicates."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def list_set(item_schema: dict[str, Any]) -> dict[str, Any]:
    """A list of unique scalars."""
    return {"x-kubernetes-list-type": "set", "items": item_schema}


def int_or_string() -> dict[str, Any]:
    return {"x-kubernetes-int-or-string": True}


def open_object(description: str) -> dict[str, Any]:
    """An object passed through to Kubernetes unvalidated by our schema."""
    return {
        "type": "object",
        "description": description,
        "x-kubernetes-preserve-unknown-fields": True,
    }
