"""Crash points: where a test may have the operator SIGKILL itself.

Restart safety is a promise about every instant between two API calls;
killing the process from outside only hits the instants a race happens
to reach. A test sets ``SLUICE_CRASH_AT`` to a point's name and
``SLUICE_CRASH_MARKER`` to a file path: the first time the point is
reached the file is created and the process kills itself with SIGKILL (no
cleanup, no lease release, as a node failure would), and once restarted
with the file present it passes the point. Unset, a point costs one
string comparison.
"""

from __future__ import annotations

import os
import pathlib
import signal

# Between recording a run's asset updates on the Assets and the run's status write.
ASSET_RECORDED = "asset-recorded"
# After the run's status write listing those updates.
RUN_STATUS_WRITTEN = "run-status-written"
# Between creating an asset run and the Pipeline's status write counting it.
ASSET_RUN_CREATED = "asset-run-created"
# After the Pipeline's status write counting it.
PIPELINE_STATUS_WRITTEN = "pipeline-status-written"

_ARMED = os.environ.get("SLUICE_CRASH_AT", "")


def crash_point(name: str) -> None:
    if name != _ARMED:
        return
    marker = pathlib.Path(os.environ.get("SLUICE_CRASH_MARKER", "/tmp/sluice-crashed"))
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
