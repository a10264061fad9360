"""Health as GitOps tools read it, from objects the operator wrote on a real
API server: kstatus (sigs.k8s.io/cli-utils, what Flux waits on; built by
hack/kstatus/build) and the Argo CD health check shipped in docs/argocd/
(run by Lua 5.1, as Argo CD's gopher-lua runs it).
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
from typing import Any

import pytest
import yaml

from tests.builders import pipeline, run, task
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster_scope_only]

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "docs" / "argocd" / "health.lua"
# Argo CD gives the script the object as the global `obj` and reads the table it returns.
LUA_HARNESS = """
local cjson = require("cjson")
local script = assert(loadfile(os.getenv("HEALTH_LUA")))
-- Argo CD hands the script JSON null as nil, not as cjson's null marker.
local function strip(value)
  if value == cjson.null then return nil end
  if type(value) == "table" then
    for k, v in pairs(value) do value[k] = strip(v) end
  end
  return value
end
for line in io.lines() do
  local env = setmetatable({obj = strip(cjson.decode(line))}, {__index = _G})
  setfenv(script, env)
  local hs = script()
  print(env.obj.metadata.name .. "\\t" .. hs.status .. "\\t" .. (hs.message or ""))
end
"""


@pytest.fixture(scope="session")
def kstatus() -> str:
    return subprocess.run(
        [str(ROOT / "hack" / "kstatus" / "build")], check=True, capture_output=True, text=True
    ).stdout.strip()


def read_kstatus(binary: str, objects: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    out = subprocess.run(
        [binary], input=json.dumps({"items": objects}), check=True, capture_output=True, text=True
    ).stdout
    return {
        name: (status, message) for name, status, message in (line.split("\t") for line in out.splitlines())
    }


def read_argocd(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    out = subprocess.run(
        ["lua5.1", "-e", LUA_HARNESS],
        env={**os.environ, "HEALTH_LUA": str(HEALTH_LUA)},
        input="".join(json.dumps(o) + "\n" for o in objects),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        name: (status, message) for name, status, message in (line.split("\t") for line in out.splitlines())
    }


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), None)


def test_kstatus_and_argocd_read_pipelines_and_runs_as_meant(
    kube: Kube, operator: OperatorProcess, namespace: str, kstatus: str
) -> None:
    failing = task("load", fail=True, annotations={"sim.sluice.dev/message": "table locked"})
    kube.apply(
        namespace,
        pipeline("good", [task("a"), task("b", "a")]),
        pipeline("cyclic", [task("a", "b"), task("b", "a")]),
        pipeline("paused", [task("a")], schedule={"cron": "0 3 * * *", "suspend": True}),
        pipeline("broken", [failing]),
        pipeline("slow", [task("wait", duration="300s")]),
        run("ok", "good"),
        run("bad", "broken"),
        run("busy", "slow"),
        run("stopped", "slow"),
    )
    kube.wait_run(namespace, "ok")
    kube.wait_run(namespace, "bad")
    # Cancelled by an edit of its spec (a new generation): it must say it saw it.
    kube.kubectl(
        "patch",
        "pipelinerun",
        "stopped",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"cancelled":true}}',
    )
    kube.wait_run(namespace, "stopped", ("Cancelled",))
    # Written before the health conditions existed (an upgrade): they come back.
    old = [c for c in kube.run(namespace, "ok")["status"]["conditions"] if c["type"] == "Succeeded"]
    kube.kubectl(
        "patch",
        "pipelinerun",
        "ok",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": old}}),
    )

    def get(plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = kube.custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, plural, name
        )
        return obj

    def settled(plural: str, name: str, kind: str) -> dict[str, Any] | None:
        obj = get(plural, name)
        ready = _condition(obj, "Ready")
        return (
            obj
            if ready
            and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
            and (kind != "Running" or _condition(obj, "Reconciling"))
            else None
        )

    objects = [
        wait_for(f"{name}'s health conditions", lambda p=plural, n=name, k=kind: settled(p, n, k))
        for plural, name, kind in (
            ("pipelines", "good", ""),
            ("pipelines", "cyclic", ""),
            ("pipelines", "paused", ""),
            ("pipelineruns", "ok", ""),
            ("pipelineruns", "bad", ""),
            ("pipelineruns", "busy", "Running"),
            ("pipelineruns", "stopped", ""),
        )
    ]
    # A Pipeline edited but not yet seen by the operator (generation ahead).
    edited = copy.deepcopy(objects[0])
    edited["metadata"]["name"] = "edited"
    edited["metadata"]["generation"] += 1
    objects.append(edited)

    flux = read_kstatus(kstatus, objects)
    assert {name: status for name, (status, _) in flux.items()} == {
        "good": "Current",
        "cyclic": "Failed",
        "paused": "Current",
        "ok": "Current",
        "bad": "Failed",
        "busy": "InProgress",
        "stopped": "Failed",
        "edited": "InProgress",
    }
    assert "tasks form a cycle: a -> b -> a" in flux["cyclic"][1]
    assert "table locked" in flux["bad"][1]

    argo = read_argocd(objects)
    assert {name: status for name, (status, _) in argo.items()} == {
        "good": "Healthy",
        "cyclic": "Degraded",
        "paused": "Suspended",
        "ok": "Healthy",
        "bad": "Degraded",
        "busy": "Progressing",
        "stopped": "Degraded",
        "edited": "Progressing",
    }
    assert argo["cyclic"][1].startswith("CycleDetected: tasks form a cycle")
    assert "table locked" in argo["bad"][1]
    # kubectl's own wait reads the same Ready condition
    kube.kubectl("wait", "-n", namespace, "pipelinerun/ok", "--for=condition=Ready", "--timeout=5s")


def test_the_argocd_config_snippet_carries_the_tested_script() -> None:
    snippet = yaml.safe_load((ROOT / "docs" / "argocd" / "argocd-cm.yaml").read_text())
    scripts = {key: value for key, value in snippet["data"].items()}
    assert set(scripts) == {
        f"resource.customizations.health.sluice.dev_{kind}"
        for kind in ("Pipeline", "PipelineRun", "Backfill")
    }
    assert all(script == HEALTH_LUA.read_text() for script in scripts.values())
