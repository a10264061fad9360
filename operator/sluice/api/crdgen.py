"""Generate the CustomResourceDefinitions from the pydantic API models.

Why generate: the CRD schema is what the API server enforces and the models
are what the operator parses with; writing both by hand lets them drift. The
committed ``crds/*.yaml`` are this module's output, and a unit test fails when
they differ (run ``hack/gen-crds`` after changing ``v1alpha1.py``).

Pydantic emits JSON Schema with ``$ref``/``anyOf``; Kubernetes requires a
*structural* schema (every node typed, no refs, nullable unions folded), so
the conversion below inlines references and folds ``X | None`` to ``X``.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from sluice.api import v1alpha1 as api

# Keywords a structural schema may carry through unchanged.
_KEPT = {
    "description",
    "type",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "enum",
    "required",
}


class SchemaError(ValueError):
    """A model uses a construct the CRD generator cannot express."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node["$ref"].rsplit("/", 1)[-1]
    merged: dict[str, Any] = copy.deepcopy(defs[ref])
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _fold_any_of(node: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    types = sorted(o.get("type", "") for o in options)
    if types == ["integer", "string"] and all(len(o) == 1 for o in options):
        return {**rest, "x-kubernetes-int-or-string": True}
    if len(options) != 1:
        raise SchemaError(f"cannot express union {node['anyOf']!r} structurally")
    return {**options[0], **rest}


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON-schema node into a structural OpenAPI node."""
    if "$ref" in node:
        node = _resolve(node, defs)
    if "anyOf" in node:
        node = _fold_any_of(node)
        if "$ref" in node or "anyOf" in node:
            return structural(node, defs)
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT or k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        return out
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: structural(v, defs) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = structural(node["items"], defs)
    extra = node.get("additionalProperties")
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
    elif extra is True or extra == {}:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, dict):
        out["additionalProperties"] = structural(extra, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "type" not in out:
        raise SchemaError(f"untyped schema node: {node!r}")
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _with_validations(schema: dict[str, Any], rules: list[dict[str, str]]) -> dict[str, Any]:
    """Add ``rules`` after those the model itself declares."""
    schema["x-kubernetes-validations"] = [*schema.get("x-kubernetes-validations", ()), *rules]
    return schema


# CEL rules for what OpenAPI keywords cannot say. Cheap ones only: the API
# server bounds a rule's estimated cost, so O(tasks^2) checks (unknown
# dependencies, cycles) stay in the operator and are reported in status.
TASK_RULES = [
    {
        "rule": "!has(self.dependsOn) || !(self.name in self.dependsOn)",
        "message": "a task cannot depend on itself",
    }
]
FINALLY_RULES = [
    {"rule": "!has(self.dependsOn)", "message": "finally tasks run after all tasks and cannot use dependsOn"}
]
RUN_RULES = [
    {
        "rule": "has(self.rerunOf) ? !has(self.pipelineRef) && !has(self.pipelineSpec)"
        " : has(self.pipelineRef) != has(self.pipelineSpec)",
        "message": "exactly one of spec.pipelineRef, spec.pipelineSpec or spec.rerunOf must be set",
    }
]


def _pipeline_spec_schema() -> dict[str, Any]:
    spec = model_schema(api.PipelineSpec)
    _with_validations(spec["properties"]["tasks"]["items"], TASK_RULES)
    _with_validations(spec["properties"]["finally"]["items"], FINALLY_RULES)
    return spec


def _object_schema(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["sluice"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _column(name: str, path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


AGE = _column("Age", ".metadata.creationTimestamp", "date")


def pipeline_crd() -> dict[str, Any]:
    schema = _object_schema(_pipeline_spec_schema(), model_schema(api.PipelineStatus))
    schema["description"] = "A DAG of containerised tasks, optionally on a schedule."
    columns = [
        _column("Tasks", ".status.taskCount", "integer"),
        _column("Schedule", ".spec.schedule.cron"),
        _column("On Assets", ".spec.schedule.onAssets", priority=1),
        _column("Last Run", ".status.lastRunName"),
        _column("Valid", '.status.conditions[?(@.type=="Valid")].status', priority=1),
        AGE,
    ]
    return _crd("Pipeline", api.PIPELINES, ["spl"], schema, columns)


def pipelinerun_crd() -> dict[str, Any]:
    spec = _with_validations(model_schema(api.PipelineRunSpec), RUN_RULES)
    spec["properties"]["pipelineSpec"] = _pipeline_spec_schema()
    status = model_schema(api.PipelineRunStatus)
    status["properties"]["pipelineSpec"] = _pipeline_spec_schema()
    schema = _object_schema(spec, status)
    schema["description"] = "One execution of a Pipeline: one pod per task attempt, in dependency order."
    columns = [
        _column("Pipeline", ".status.pipelineName"),
        _column("Status", ".status.phase"),
        _column("Tasks", ".status.progress"),
        _column("Started", ".status.startTime", "date"),
        _column("Duration", ".status.duration"),
        _column("Reason", '.status.conditions[?(@.type=="Succeeded")].reason', priority=1),
        AGE,
    ]
    return _crd("PipelineRun", api.PIPELINE_RUNS, ["spr"], schema, columns)


def backfill_crd() -> dict[str, Any]:
    schema = _object_schema(model_schema(api.BackfillSpec), model_schema(api.BackfillStatus))
    schema["description"] = "Loads a past range of a scheduled Pipeline: one run per interval, oldest first."
    columns = [
        _column("Pipeline", ".spec.pipelineRef.name"),
        _column("Status", ".status.phase"),
        _column("Done", ".status.done", "integer"),
        _column("Running", ".status.running", "integer"),
        _column("Failed", ".status.failed", "integer"),
        _column("Total", ".status.total", "integer"),
        _column("Reason", '.status.conditions[?(@.type=="Succeeded")].reason', priority=1),
        AGE,
    ]
    return _crd("Backfill", api.BACKFILLS, ["sbf"], schema, columns)


def asset_crd() -> dict[str, Any]:
    schema = _object_schema(model_schema(api.AssetSpec), model_schema(api.AssetStatus))
    schema["description"] = "A data asset: the updates tasks made to it, which asset schedules wait on."
    columns = [
        _column("Asset", ".spec.name"),
        _column("Updates", ".status.sequence", "integer"),
        _column("Last Update", ".status.lastUpdateTime", "date"),
        _column("By", ".status.lastUpdatedBy"),
        AGE,
    ]
    return _crd("Asset", api.ASSETS, ["sas"], schema, columns)


def trigger_crd() -> dict[str, Any]:
    schema = _object_schema(model_schema(api.TriggerSpec), model_schema(api.TriggerStatus))
    schema["description"] = "An HMAC-signed webhook that starts a run of a Pipeline per event."
    columns = [
        _column("Pipeline", ".spec.pipelineRef.name"),
        _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        _column("Last Run", ".status.lastRunName"),
        _column("Path", ".status.path", priority=1),
        AGE,
    ]
    return _crd("Trigger", api.TRIGGERS, ["strg"], schema, columns)


HEADER = "# Generated by hack/gen-crds from operator/sluice/api/v1alpha1.py. Do not edit.\n"


def render_all() -> dict[str, str]:
    """File name under crds/ -> YAML text."""
    return {
        f"{api.GROUP}_{api.PIPELINES}.yaml": HEADER + yaml.safe_dump(pipeline_crd(), sort_keys=False),
        f"{api.GROUP}_{api.PIPELINE_RUNS}.yaml": HEADER + yaml.safe_dump(pipelinerun_crd(), sort_keys=False),
        f"{api.GROUP}_{api.BACKFILLS}.yaml": HEADER + yaml.safe_dump(backfill_crd(), sort_keys=False),
        f"{api.GROUP}_{api.ASSETS}.yaml": HEADER + yaml.safe_dump(asset_crd(), sort_keys=False),
        f"{api.GROUP}_{api.TRIGGERS}.yaml": HEADER + yaml.safe_dump(trigger_crd(), sort_keys=False),
    }
