"""The namespace's runs as admission sees them, kept from the run watch.

Why: deciding whether a run of a ``maxConcurrentRuns`` pipeline may start
used to LIST every run of the namespace, full statuses and all, on every
such pass. The watch already delivers each run; this keeps the few fields
admission reads. Admission happens only in this process (the leader), and
the reconciler feeds its own status writes in at once, so the index never
lags the decisions made from it; an older event arriving after a write is
ignored by resourceVersion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.api.meta import resource_version
from sluice.engine.admission import PeerRun, peer_run


class PeerIndex:
    """namespace -> run name -> (resourceVersion, PeerRun)."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, tuple[int, PeerRun]]] = {}

    def observe(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        runs = self.runs.setdefault(meta["namespace"], {})
        held = runs.get(meta["name"])
        version = resource_version(obj)
        if held is None or held[0] <= version:
            runs[meta["name"]] = (version, peer_run(obj))

    def forget(self, namespace: str, name: str) -> None:
        runs = self.runs.get(namespace)
        if runs is not None:
            runs.pop(name, None)
            if not runs:
                del self.runs[namespace]

    def rerun_pending(self, namespace: str, name: str) -> bool:
        """Whether an unfinished run of the namespace re-runs ``name``."""
        peers = (peer for _, peer in (self.runs.get(namespace) or {}).values())
        return any(peer.rerun_of == name and not peer.finished for peer in peers)

    def rerun_sources(self, namespace: str) -> frozenset[str]:
        """The runs of the namespace an unfinished rerun re-runs."""
        peers = (peer for _, peer in (self.runs.get(namespace) or {}).values())
        return frozenset(peer.rerun_of for peer in peers if peer.rerun_of and not peer.finished)

    def of(self, namespace: str) -> tuple[PeerRun, ...]:
        return tuple(peer for _, peer in (self.runs.get(namespace) or {}).values())
