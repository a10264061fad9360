"""Entry point: ``python -m sluice`` or ``sluice-operator``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from typing import Any, cast

import kopf

from sluice.controller import Controller
from sluice.kube import in_cluster_connection
from sluice.settings import Settings


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod, the service account; elsewhere, the kubeconfig."""
    info: kopf.ConnectionInfo | None = in_cluster_connection() or kopf.login_with_kubeconfig(**kwargs)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sluice-operator", description=__doc__)
    parser.add_argument("--namespace", help="watch only this namespace (default: all; env SLUICE_NAMESPACE)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--health-port", type=int, default=None, help="port of the /healthz liveness endpoint (default 8080)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of /metrics for Prometheus (default 9090, 0: off)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings.from_env()
    if args.namespace:
        settings = Settings(**{**settings.__dict__, "namespace": args.namespace})
    if args.health_port is not None:
        settings = Settings(**{**settings.__dict__, "health_port": args.health_port})
    if args.metrics_port is not None:
        settings = Settings(**{**settings.__dict__, "metrics_port": args.metrics_port})
    kopf.configure(verbose=args.verbose)
    if not args.verbose:
        # One line per watch event ("Handler ... succeeded") drowns real news.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # probes
    asyncio.run(
        kopf.operator(
            clusterwide=settings.namespace is None,
            namespaces=[settings.namespace] if settings.namespace else [],
            standalone=True,
            # kopf's default identity asks the passwd database for our user,
            # which a numeric non-root UID in a container does not have.
            identity=cast(Any, settings.identity or socket.gethostname()),
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
            # Handlers reach the process's one Controller through kopf's memo.
            memo=kopf.Memo(controller=Controller(settings)),
        )
    )


if __name__ == "__main__":
    main()
