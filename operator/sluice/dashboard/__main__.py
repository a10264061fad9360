"""Entry point: ``sluice-dashboard`` (the chart's dashboard Deployment).

Settings from the environment, as the chart sets them: SLUICE_NAMESPACE
(show only that namespace; default all it may read), SLUICE_DASHBOARD_PORT
(default 8080). Outside a cluster it uses the kubeconfig, so
``sluice-dashboard`` on a laptop shows what its user may read.
"""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
from aiohttp import web

from sluice.dashboard.server import Dashboard
from sluice.dashboard.store import Store
from sluice.kube import ApiError, KubeClient, in_cluster_connection
from sluice.signals import until_stopped

log = logging.getLogger("sluice.dashboard")


async def serve() -> None:
    info = in_cluster_connection() or kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise SystemExit("no Kubernetes credentials: neither in-cluster nor a kubeconfig")
    client = KubeClient(info)
    store = Store(client, os.environ.get("SLUICE_NAMESPACE") or None)
    try:
        tasks = await store.start()
    except ApiError as error:
        scope = f"namespace {store.namespace}" if store.namespace else "all namespaces"
        hint = "" if store.namespace else " (set SLUICE_NAMESPACE to a namespace you may read)"
        raise SystemExit(
            f"sluice-dashboard: cannot read pipelines and runs in {scope}: {error}{hint}"
        ) from error
    # A page or log left by its viewer ends at once (its watch of the store,
    # its upstream log connection), rather than at its next write.
    runner = web.AppRunner(Dashboard(client, store).app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    port = int(os.environ.get("SLUICE_DASHBOARD_PORT") or 8080)
    await web.TCPSite(runner, "0.0.0.0", port).start()
    log.info("sluice dashboard serving on :%d (%s)", port, store.namespace or "all namespaces")
    await until_stopped()
    await runner.cleanup()
    for task in tasks:
        task.cancel()
    await client.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
