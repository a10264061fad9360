"""The newest run of each Pipeline, shown in `kubectl get pipelines`.

Best effort, and coalesced: fifty runs of one Pipeline started together
would otherwise be fifty writes to the same object (and fifty watch events
back) in the very burst where the runs' first pods are being created. One
write per Pipeline is in flight at a time; runs started meanwhile replace
each other, and only the newest is written when it returns.
"""

from __future__ import annotations

import asyncio
import logging

from sluice.kube import KubeClient, pipeline_path
from sluice.reconcilers.keys import OwnWrites, PipelineKey

log = logging.getLogger(__name__)


class LastRunRecorder:
    def __init__(self, client: KubeClient, pipeline_writes: OwnWrites) -> None:
        self.client = client
        self.pipeline_writes = pipeline_writes
        self.pending: dict[PipelineKey, str] = {}
        self.writers: dict[PipelineKey, asyncio.Task[None]] = {}

    def record(self, namespace: str, pipeline: str, run: str) -> None:
        """Note ``run`` as the pipeline's newest; written soon, not awaited."""
        key = PipelineKey(namespace, pipeline)
        self.pending[key] = run
        if key not in self.writers:
            self.writers[key] = asyncio.create_task(self._write(key))

    async def _write(self, key: PipelineKey) -> None:
        try:
            while (run := self.pending.pop(key, None)) is not None:
                try:
                    written = await self.client.merge_patch(
                        pipeline_path(key.namespace, key.name, "status"), {"status": {"lastRunName": run}}
                    )
                    self.pipeline_writes.note(key, written)
                except Exception as error:  # best effort: the next run writes it again
                    log.info("could not record last run %s on pipeline %s: %s", run, key, error)
        finally:
            self.writers.pop(key, None)

    async def close(self) -> None:
        """Stop the writes in flight (at shutdown: the next leader writes anew)."""
        writers = list(self.writers.values())
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
