"""The engine: every decision Sluice makes, as pure functions.

Nothing under ``sluice.engine`` performs I/O or imports the framework (kopf),
the HTTP client (aiohttp) or the modules that talk to Kubernetes; an
import-linter contract in CI enforces it. The reconcilers observe the
cluster, hand the facts to a ``plan`` function here, and carry out its
answer, so every rule about what to create, retry, skip or stop is
unit-tested in milliseconds without a cluster.
"""
