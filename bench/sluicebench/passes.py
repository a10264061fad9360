"""The operator's reconcile passes, read off its Prometheus endpoint.

Passes per task say whether events that need no pass still cause one; the
mean pass time says what each costs. Read from outside, like the CPU.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

Result = dict[str, Any]


def scrape(port: int) -> dict[str, float]:
    """The operator's run-reconcile histogram, as {series: value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("sluice_reconcile_duration_seconds") and 'kind="run"' in line:
            key, value = line.rsplit(" ", 1)
            found[key] = float(value)
    return found


def pass_figures(before: dict[str, float], after: dict[str, float]) -> Result:
    """Passes between two scrapes: count, mean, and p50/p99 as bucket bounds."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    count = sum(v for k, v in delta.items() if k.startswith("sluice_reconcile_duration_seconds_count"))
    total = sum(v for k, v in delta.items() if k.startswith("sluice_reconcile_duration_seconds_sum"))
    buckets = sorted(
        (float("inf") if m[1] == "+Inf" else float(m[1]), v)
        for k, v in delta.items()
        if (m := re.search(r'le="([^"]+)"', k)) and k.startswith("sluice_reconcile_duration_seconds_bucket")
    )

    def quantile(q: float) -> float | None:
        for bound, cumulative in buckets:
            if count and cumulative >= q * count:
                return bound
        return None

    return {
        "passes": int(count),
        "mean_ms": round(1000 * total / count, 1) if count else None,
        "p50_at_most_s": quantile(0.5),
        "p99_at_most_s": quantile(0.99),
    }
