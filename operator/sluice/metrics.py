"""Prometheus metrics: what an operator of the operator watches.

Served on their own port (``--metrics-port``, 0 disables) so scraping never
competes with the health probe. Names follow Prometheus conventions
(``_total`` counters, ``_seconds`` histograms).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "sluice_reconciles_total", "Reconcile passes, by object kind and result.", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram(
    "sluice_reconcile_duration_seconds",
    "Duration of one reconcile pass (API calls included).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PODS_CREATED = Counter("sluice_pods_created_total", "Task pods created (one per attempt).")
POD_CREATE_ERRORS = Counter("sluice_pod_create_errors_total", "Task pod creates the API server refused.")
RUNS_FINISHED = Counter("sluice_runs_finished_total", "PipelineRuns that reached a final phase.", ["phase"])
RUNS_SCHEDULED = Counter("sluice_scheduled_runs_total", "PipelineRuns started by a schedule.")
RUNS_BACKFILLED = Counter("sluice_backfill_runs_total", "PipelineRuns started by a Backfill.")
ASSET_UPDATES = Counter("sluice_asset_updates_total", "Asset updates recorded on Asset objects.")
ASSET_RUNS = Counter("sluice_asset_runs_total", "PipelineRuns started by asset updates.")
ADMISSION_REVIEWS = Counter(
    "sluice_admission_reviews_total", "Admission reviews answered by the webhook.", ["webhook", "allowed"]
)
QUEUE_DEPTH = Gauge("sluice_work_queue_depth", "Objects waiting for a reconcile worker.")
LEADER = Gauge("sluice_leader", "1 while this replica holds the leader lease.")


def serve(port: int, queue_depth: Callable[[], int]) -> None:
    """Start the /metrics endpoint (in a thread) unless ``port`` is 0."""
    QUEUE_DEPTH.set_function(lambda: float(queue_depth()))
    if port:
        start_http_server(port)
