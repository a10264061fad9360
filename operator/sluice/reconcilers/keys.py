"""Work-queue keys: which object a worker reconciles, and with which reconciler."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class RunKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, order=True)
class PipelineKey:
    """Queue key for a Pipeline's own pass (its status and its schedule)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"pipeline {self.namespace}/{self.name}"


@dataclass(frozen=True, order=True)
class BackfillKey:
    """Queue key for a Backfill's pass."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"backfill {self.namespace}/{self.name}"


Key = RunKey | PipelineKey | BackfillKey


class OwnWrites:
    """The resourceVersion of the last write this operator made to each
    object: the watch event it causes needs no pass, since the pass that
    wrote it acted on everything it knew. Anyone else's change (a user's
    edit, a restored status) has another version and is acted on.
    """

    def __init__(self) -> None:
        self.versions: dict[Key, str] = {}

    def note(self, key: Key, written: dict[str, object]) -> None:
        meta = written.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if isinstance(version, str):
            self.versions[key] = version

    def ours(self, key: Key, resource_version: str) -> bool:
        return bool(resource_version) and self.versions.get(key) == resource_version

    def forget(self, key: Key) -> None:
        self.versions.pop(key, None)


class Waiters:
    """Runs waiting on something about a Pipeline (for it to exist, for a
    concurrency slot), woken by the event that ends the wait.
    """

    def __init__(self) -> None:
        self.by_pipeline: dict[tuple[str, str], set[RunKey]] = {}

    def wait(self, namespace: str, pipeline: str, key: RunKey) -> None:
        self.by_pipeline.setdefault((namespace, pipeline), set()).add(key)

    def release(self, namespace: str, pipeline: str) -> set[RunKey]:
        return self.by_pipeline.pop((namespace, pipeline), set())

    def forget(self, key: RunKey) -> None:
        """A deleted run waits for nothing."""
        for scope in [s for s, keys in self.by_pipeline.items() if key in keys]:
            self.by_pipeline[scope].discard(key)
            if not self.by_pipeline[scope]:
                del self.by_pipeline[scope]
