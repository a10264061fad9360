"""The PipelineRun a Pipeline's schedule, asset updates or a Trigger start.

One shape for all of them: labelled with its pipeline and owned by it, so
they are listed, pruned and garbage-collected the same way, and deleting a
Trigger (or editing a schedule) never stops a load already started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.api import labels
from sluice.api.v1alpha1 import API_VERSION
from sluice.engine.naming import label_value


def pipeline_owned_run(
    pipeline_meta: Mapping[str, Any],
    name: str,
    spec: dict[str, Any],
    extra_labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": {
            "name": name,
            "namespace": pipeline_meta["namespace"],
            "labels": {labels.PIPELINE: label_value(pipeline_meta["name"]), **extra_labels},
            "annotations": dict(annotations),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Pipeline",
                    "name": pipeline_meta["name"],
                    "uid": pipeline_meta["uid"],
                }
            ],
        },
        "spec": {"pipelineRef": {"name": pipeline_meta["name"]}, **spec},
    }
