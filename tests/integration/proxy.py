"""A local TCP proxy that can black-hole a process's API traffic.

Between one operator replica and the API server: during ``partition()``,
bytes are swallowed in both directions and new connections go nowhere, but
nothing is closed or refused, as on a network partition (the worst case
for leader election: calls neither fail nor answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class BlackHoleProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._open: asyncio.Event | None = None  # cleared while black-holed
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._open = asyncio.Event()
        self._open.set()
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        # End every connection while the loop still runs, so none is left to
        # be closed by the garbage collector on a closed loop.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        await self._open.wait()  # a partition: the connection hangs, unanswered
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            assert self._open is not None
            while data := await reader.read(65536):
                if not self._open.is_set():
                    await self._open.wait()  # what crossed the partition is lost
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def start(self) -> BlackHoleProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _set_open(self, value: bool) -> None:
        assert self._open is not None
        self._loop.call_soon_threadsafe(self._open.set if value else self._open.clear)

    @contextlib.contextmanager
    def partition(self) -> Iterator[None]:
        self._set_open(False)
        try:
            yield
        finally:
            self._set_open(True)
