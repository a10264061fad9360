"""The operator's CPU time and memory, and the machine's, from /proc.

Read from outside the operator so that measuring costs it nothing, and so
the figures include everything the process does (kopf, aiohttp, GC), not
only what our code would think to time.
"""

from __future__ import annotations

import os
import pathlib
import time
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``'s live threads, to the nanosecond (the first field
    of each /proc/<pid>/task/<tid>/schedstat). utime + stime from
    /proc/<pid>/stat count in clock ticks (10 ms), too coarse for a scenario
    of a tenth of a CPU-second: that is the fallback where schedstat is absent.
    """
    try:
        threads = list(pathlib.Path(f"/proc/{pid}/task").iterdir())
        return sum(int((t / "schedstat").read_text().split()[0]) for t in threads) / 1e9
    except (OSError, ValueError, IndexError):
        raw = pathlib.Path(f"/proc/{pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces
        return (int(fields[11]) + int(fields[12])) / TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS (current RSS) in KiB."""
    found = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, needs ptrace rights over
    ``pid``), so each scenario's peak is its own; False if not allowed.
    """
    try:
        pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS


@dataclass(frozen=True)
class Sample:
    """One reading of the operator and the machine."""

    wall: float
    operator_cpu: float
    machine_busy: float

    @classmethod
    def take(cls, pid: int) -> Sample:
        return cls(time.monotonic(), cpu_seconds(pid), machine_busy_seconds())


class CpuTrace:
    """Readings every ``interval`` seconds while it runs, so the CPU spent in
    a window known only afterwards (first to last pod of a fan-out) can be
    read off: the operator's cores and the machine's busy cores in it, and
    each named process's (the cluster's components, this benchmark), so a
    slow window can be blamed on whoever used the machine in it.
    """

    def __init__(self, pid: int | None, interval: float = 0.05, others: dict[str, int] | None = None) -> None:
        self.pid = pid
        self.interval = interval
        self.others = dict(others or {})
        self.samples: list[tuple[float, float, float]] = []
        self.other_samples: list[dict[str, float]] = []

    def take(self) -> None:
        operator = cpu_seconds(self.pid) if self.pid is not None else 0.0
        self.samples.append((time.monotonic(), operator, machine_busy_seconds()))
        self.other_samples.append({name: _cpu_or_zero(pid) for name, pid in self.others.items()})

    def _bounds(self, start: float, end: float) -> tuple[int, int] | None:
        before = [i for i, s in enumerate(self.samples) if s[0] <= start]
        after = [i for i, s in enumerate(self.samples) if s[0] >= end]
        if not before or not after or self.samples[after[0]][0] <= self.samples[before[-1]][0]:
            return None
        return before[-1], after[0]

    def cores_between(self, start: float, end: float) -> tuple[float, float] | None:
        """(operator cores, machine busy cores) from the last reading at or
        before ``start`` to the first at or after ``end``; None when the
        trace does not cover the window.
        """
        bounds = self._bounds(start, end)
        if bounds is None:
            return None
        first, last = self.samples[bounds[0]], self.samples[bounds[1]]
        wall = last[0] - first[0]
        return (last[1] - first[1]) / wall, (last[2] - first[2]) / wall

    def others_between(self, start: float, end: float) -> dict[str, float]:
        """Each named process's cores over the same window as ``cores_between``."""
        bounds = self._bounds(start, end)
        if bounds is None:
            return {}
        wall = self.samples[bounds[1]][0] - self.samples[bounds[0]][0]
        first, last = self.other_samples[bounds[0]], self.other_samples[bounds[1]]
        return {name: round((last[name] - first[name]) / wall, 2) for name in self.others}


def _cpu_or_zero(pid: int) -> float:
    """A process that is gone (a restarted component) reads as no CPU."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0
