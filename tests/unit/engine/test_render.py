from sluice.api import labels
from sluice.api.v1alpha1 import PipelineSpec
from sluice.engine.naming import attempt_name
from sluice.engine.render import TRACKING_FINALIZER, RunIdentity, render_pod

RUN = RunIdentity(namespace="etl", name="daily-sales", uid="1111-2222", pipeline_name="sales")


def test_render_pod_substitutes_and_applies_defaults() -> None:
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
                    "metadata": {
                        "labels": {"team": "data", "kueue.x-k8s.io/queue-name": "batch"},
                        "annotations": {"a": "b"},
                    },
                    "timeoutSeconds": 600,
                }
            ],
        }
    )
    body = render_pod(RUN, spec, spec.tasks[0], {"params.day": "2026-03-04"}, attempt=2)
    meta, pod = body["metadata"], body["spec"]
    container = pod["containers"][0]
    assert (body["apiVersion"], body["kind"]) == ("v1", "Pod")
    assert meta["name"] == attempt_name("daily-sales", "1111-2222", "load", 2)
    assert meta["ownerReferences"][0]["uid"] == "1111-2222"
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["ownerReferences"][0]["blockOwnerDeletion"] is True
    assert meta["finalizers"] == [TRACKING_FINALIZER]
    assert meta["labels"][labels.TASK] == "load"
    assert meta["labels"][labels.ATTEMPT] == "2"
    assert meta["labels"][labels.RUN_UID] == "1111-2222"
    # The user's labels pass through (Kueue admits pods by its queue label).
    assert meta["labels"]["team"] == "data"
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "batch"
    assert meta["annotations"] == {"a": "b"}
    assert pod["restartPolicy"] == "Never"
    assert pod["activeDeadlineSeconds"] == 600
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


def test_a_task_without_timeout_has_no_deadline_and_own_labels_win_a_clash() -> None:
    spec = PipelineSpec.model_validate(
        {
            "tasks": [
                {
                    "name": "load",
                    "image": "etl/load:1",
                    "metadata": {"labels": {labels.TASK: "spoofed", labels.RUN_UID: "x"}},
                }
            ]
        }
    )
    body = render_pod(RUN, spec, spec.tasks[0], {})
    assert "activeDeadlineSeconds" not in body["spec"]
    assert body["metadata"]["labels"][labels.TASK] == "load"
    assert body["metadata"]["labels"][labels.RUN_UID] == "1111-2222"
    assert "annotations" not in body["metadata"]


HOSTILE = [
    "$(DB_PASSWORD)",
    "$$(DB_PASSWORD)",
    "x; rm -rf / #",
    "`id`",
    "line one\nline two",
    "naïve \u2013 数据 🚀",
    "$HOME and $$ and a trailing $",
]


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet does to command, args and env values: ``$$`` is one
    ``$``, ``$(NAME)`` is NAME's value when the container defines it."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i] == "$" and i + 1 < len(text) and text[i + 1] == "(" and ")" in text[i:]:
            end = text.index(")", i)
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_substituted_values_reach_the_task_verbatim_and_never_expand_the_containers_env() -> None:
    # A param or result is data: `$(DB_PASSWORD)` in it must not pull in a
    # secret-backed variable, while the task's own `$(DB_PASSWORD)` still may.
    spec = PipelineSpec.model_validate(
        {
            "params": [{"name": "where"}],
            "tasks": [
                {
                    "name": "load",
                    "image": "etl/load:1",
                    "command": ["load", "$(params.where)"],
                    "args": ["--where=$(params.where)", "--password=$(DB_PASSWORD)"],
                    "env": [
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                        {"name": "WHERE", "value": "$(params.where)"},
                    ],
                }
            ],
        }
    )
    secrets = {"DB_PASSWORD": "hunter2"}
    for value in HOSTILE:
        container = render_pod(RUN, spec, spec.tasks[0], {"params.where": value})["spec"]["containers"][0]
        assert kubelet_expand(container["command"][1], secrets) == value
        assert kubelet_expand(container["args"][0], secrets) == f"--where={value}"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert kubelet_expand(env["WHERE"], secrets) == value
        assert kubelet_expand(container["args"][1], secrets) == "--password=hunter2"
