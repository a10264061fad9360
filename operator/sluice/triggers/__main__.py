"""Entry point: ``python -m sluice.triggers`` (the chart's triggers Deployment).

Settings come from the environment, as the chart sets them:
SLUICE_NAMESPACE (serve only that namespace's Triggers; default all),
SLUICE_TRIGGERS_PORT (default 8080), SLUICE_TRIGGERS_MAX_BODY_BYTES
(default 1 MiB), SLUICE_METRICS_PORT (default 9090, 0: off).
"""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from sluice.kube import KubeClient, in_cluster_connection
from sluice.signals import until_stopped
from sluice.triggers.server import TriggerServer, close

log = logging.getLogger("sluice.triggers")


async def serve() -> None:
    info = in_cluster_connection() or kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise SystemExit("no Kubernetes credentials: neither in-cluster nor a kubeconfig")
    server = TriggerServer(
        KubeClient(info),
        os.environ.get("SLUICE_NAMESPACE") or None,
        int(os.environ.get("SLUICE_TRIGGERS_MAX_BODY_BYTES") or 1024 * 1024),
    )
    metrics_port = int(os.environ.get("SLUICE_METRICS_PORT") or 9090)
    if metrics_port:
        start_http_server(metrics_port)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    port = int(os.environ.get("SLUICE_TRIGGERS_PORT") or 8080)
    # Listening at once (healthz says 503 until the watches have listed).
    await web.TCPSite(runner, "0.0.0.0", port).start()
    tasks = await server.start_watches()
    tasks.append(asyncio.create_task(server.write_statuses()))
    log.info("sluice triggers serving on :%d (%s)", port, server.namespace or "all namespaces")
    await until_stopped()
    await runner.cleanup()
    await close(server, tasks)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
