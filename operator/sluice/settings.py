"""Operator settings, read once from the environment.

These are first-order performance knobs (peers learned that hidden defaults
of 2 workers and 5 QPS make dependent tasks wait for seconds), so they are
explicit, documented in the README, and exposed as Helm values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    workers: int = 16
    api_qps: float = 0.0  # 0 = no client-side limit; the API server's fairness still applies
    api_burst: int = 100
    pipeline_grace_seconds: float = 10.0
    namespace: str | None = None
    health_port: int = 8080
    metrics_port: int = 9090
    leader_election: bool = True
    leader_namespace: str = "default"
    identity: str | None = None
    lease_seconds: int = 15
    renew_seconds: float = 5.0
    # Finished runs made by hand are deleted this long after they finished
    # (unless they set spec.ttlSecondsAfterFinished); 0 keeps them forever.
    run_ttl_seconds: int = 7 * 24 * 3600
    # A task pod stuck on an image it cannot pull or a missing Secret or
    # ConfigMap fails its attempt this long after it was scheduled (retries
    # then apply); 0 waits for ever, showing why.
    pending_deadline_seconds: float = 300.0
    # The validating admission webhook (0: not served). Its certificates live
    # in ``webhook_secret`` (in the operator's namespace, leader_namespace);
    # their CA goes into the ValidatingWebhookConfiguration
    # ``webhook_configuration``; the serving certificate names the Service
    # ``webhook_service`` and any ``webhook_hosts``.
    webhook_port: int = 0
    webhook_secret: str = ""
    webhook_configuration: str = ""
    webhook_service: str = ""
    webhook_hosts: tuple[str, ...] = ()
    webhook_cert_dir: str = "/tmp/sluice-webhook"

    @property
    def webhook_names(self) -> tuple[str, ...]:
        """Every name the serving certificate must carry."""
        service, namespace = self.webhook_service, self.leader_namespace
        names = (
            (
                service,
                f"{service}.{namespace}",
                f"{service}.{namespace}.svc",
                f"{service}.{namespace}.svc.cluster.local",
            )
            if service
            else ()
        )
        return tuple(dict.fromkeys((*names, *self.webhook_hosts)))

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            workers=_int("SLUICE_WORKERS", cls.workers),
            api_qps=_float("SLUICE_API_QPS", cls.api_qps),
            api_burst=_int("SLUICE_API_BURST", cls.api_burst),
            pipeline_grace_seconds=_float("SLUICE_PIPELINE_GRACE_SECONDS", cls.pipeline_grace_seconds),
            namespace=os.environ.get("SLUICE_NAMESPACE") or None,
            health_port=_int("SLUICE_HEALTH_PORT", cls.health_port),
            metrics_port=_int("SLUICE_METRICS_PORT", cls.metrics_port),
            leader_election=os.environ.get("SLUICE_LEADER_ELECTION", "true").lower()
            not in ("0", "false", "no"),
            leader_namespace=os.environ.get("SLUICE_LEADER_NAMESPACE")
            or _pod_namespace()
            or cls.leader_namespace,
            identity=os.environ.get("POD_NAME") or None,
            lease_seconds=_int("SLUICE_LEASE_SECONDS", cls.lease_seconds),
            renew_seconds=_float("SLUICE_RENEW_SECONDS", cls.renew_seconds),
            run_ttl_seconds=_int("SLUICE_RUN_TTL_SECONDS", cls.run_ttl_seconds),
            pending_deadline_seconds=_float("SLUICE_PENDING_DEADLINE_SECONDS", cls.pending_deadline_seconds),
            webhook_port=_int("SLUICE_WEBHOOK_PORT", cls.webhook_port),
            webhook_secret=os.environ.get("SLUICE_WEBHOOK_SECRET", ""),
            webhook_configuration=os.environ.get("SLUICE_WEBHOOK_CONFIGURATION", ""),
            webhook_service=os.environ.get("SLUICE_WEBHOOK_SERVICE", ""),
            webhook_hosts=tuple(
                h.strip() for h in os.environ.get("SLUICE_WEBHOOK_HOSTS", "").split(",") if h.strip()
            ),
            webhook_cert_dir=os.environ.get("SLUICE_WEBHOOK_CERT_DIR") or cls.webhook_cert_dir,
        )


def _pod_namespace() -> str | None:
    """The namespace the operator's pod runs in, when it runs in one."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
            return handle.read().strip() or None
    except OSError:
        return None
