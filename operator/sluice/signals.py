"""Waiting for the end a pod is told about: SIGTERM (the kubelet), or
SIGINT (Ctrl-C on a laptop), shared by the servers beside the operator.
"""

from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> None:
    """Return once SIGTERM or SIGINT arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
