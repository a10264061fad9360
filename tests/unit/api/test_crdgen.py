"""The committed CRDs must be exactly what the API models generate."""

import pathlib

import pytest
from pydantic import BaseModel

from sluice.api import v1alpha1 as api
from sluice.api.crdgen import SchemaError, model_schema, render_all

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("folder", ["crds", "helm/sluice/crds"])
@pytest.mark.parametrize("name", sorted(render_all()))
def test_committed_crd_matches_models(folder: str, name: str) -> None:
    committed = (ROOT / folder / name).read_text()
    assert committed == render_all()[name], f"{folder}/{name} is stale: run hack/gen-crds"


def walk(node: dict, path: str = "") -> list[str]:
    """Paths of schema nodes that are not structural (no type, no escape hatch)."""
    bad = []
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        bad.append(path or "/")
    for key in ("$ref", "anyOf", "oneOf", "allOf"):
        if key in node:
            bad.append(f"{path} has {key}")
    for name, child in (node.get("properties") or {}).items():
        bad += walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        bad += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        bad += walk(node["additionalProperties"], f"{path}{{}}")
    return bad


@pytest.mark.parametrize(
    "model", [api.PipelineSpec, api.PipelineRunSpec, api.PipelineRunStatus, api.PipelineStatus]
)
def test_schemas_are_structural(model: type[BaseModel]) -> None:
    assert walk(model_schema(model)) == []


def test_every_model_field_is_in_the_schema() -> None:
    schema = model_schema(api.TaskSpec)
    wire_names = {f.alias or name for name, f in api.TaskSpec.model_fields.items()}
    assert wire_names == set(schema["properties"])


def test_unsupported_union_is_refused() -> None:
    class Bad(BaseModel):
        value: int | list[str]

    with pytest.raises(SchemaError):
        model_schema(Bad)


def test_image_pattern_accepts_real_references_and_rejects_junk() -> None:
    import re

    pattern = re.compile(api.IMAGE_PATTERN)
    for good in [
        "busybox",
        "busybox:1.36",
        "ghcr.io/org/app:v1",
        "localhost:5000/a/b",
        "python:3.12-slim",
        "sluice.local/etl@sha256:" + "a" * 64,
    ]:
        assert pattern.match(good), good
    for bad in ["", "Busybox", "bad image", "img:", ":tag", "a//b", "img:tag with space"]:
        assert not pattern.match(bad), bad
