from sluice.api import labels
from sluice.api.v1alpha1 import PipelineSpec
from sluice.engine.naming import job_name
from sluice.engine.render import RunIdentity, render_job

RUN = RunIdentity(namespace="etl", name="daily-sales", uid="1111-2222", pipeline_name="sales")


def test_render_job_substitutes_and_applies_defaults() -> None:
    spec = PipelineSpec.model_validate(
        {
            "params": [{"name": "day"}],
            "defaults": {
                "serviceAccountName": "etl",
                "nodeSelector": {"pool": "batch"},
                "env": [{"name": "LOG", "value": "info"}, {"name": "DAY", "value": "default"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "imagePullSecrets": [{"name": "regcred"}],
                "securityContext": {"runAsNonRoot": True},
            },
            "tasks": [
                {
                    "name": "load",
                    "image": "registry.example.com:5000/etl/load:1.2",
                    "command": ["python", "-m", "load"],
                    "args": ["--day=$(params.day)", "--task=$(context.task.name)"],
                    "env": [{"name": "DAY", "value": "$(params.day)"}],
                    "resources": {"requests": {"cpu": 2}},
                    "metadata": {"labels": {"team": "data"}, "annotations": {"a": "b"}},
                }
            ],
        }
    )
    job = render_job(RUN, spec, spec.tasks[0], {"params.day": "2026-03-04"})
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["name"] == job_name("daily-sales", "1111-2222", "load")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "1111-2222"
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    assert job["metadata"]["labels"][labels.TASK] == "load"
    assert job["spec"]["backoffLimit"] == 0
    assert container["args"] == ["--day=2026-03-04", "--task=load"]
    assert {"name": "DAY", "value": "2026-03-04"} in container["env"]
    assert {"name": "LOG", "value": "info"} in container["env"]
    assert len([e for e in container["env"] if e["name"] == "DAY"]) == 1
    assert container["resources"] == {"requests": {"cpu": 2, "memory": "64Mi"}}
    assert container["securityContext"] == {"runAsNonRoot": True}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["serviceAccountName"] == "etl"
    assert pod["nodeSelector"] == {"pool": "batch"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["restartPolicy"] == "Never"
    template_labels = job["spec"]["template"]["metadata"]["labels"]
    assert template_labels["team"] == "data"
    assert template_labels[labels.RUN_UID] == "1111-2222"
    assert job["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
