"""Sample the operator with py-spy during a scenario, and read the result.

py-spy reads the process's memory from outside: no instrumentation in the
operator, and the profile covers kopf, aiohttp and the event loop too. Its
``raw`` output is the collapsed-stack format, one line per distinct stack:
``frame;frame;...;leaf COUNT`` with frames like ``func (path/file.py:123)``.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# What a function's own samples are charged to in the summary, by the first
# component of its file as py-spy shortens it ("kopf/_core/...", "json/decoder.py").
CATEGORIES = {
    "sluice": "sluice (our code)",
    "kopf": "kopf",
    "aiohttp": "HTTP client (aiohttp, yarl, multidict)",
    "yarl": "HTTP client (aiohttp, yarl, multidict)",
    "multidict": "HTTP client (aiohttp, yarl, multidict)",
    "json": "JSON encode/decode",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "copy.py": "deepcopy",
    "ssl.py": "TLS",
    "asyncio": "asyncio machinery",
    "selectors.py": "epoll wait (event loop idle or waiting)",
    "concurrent": "thread pool",
    "threading.py": "thread pool",
    "logging": "logging",
}


def py_spy() -> str:
    """The venv's py-spy, installed with pip on first use."""
    found = pathlib.Path(sys.executable).parent / "py-spy"
    if not found.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(found if found.exists() else shutil.which("py-spy") or "py-spy")


class Recorder:
    """A running ``py-spy record``; stop() ends it early (SIGINT makes py-spy
    write what it has), so the profile covers the scenario and no more.
    """

    def __init__(self, pid: int, out: pathlib.Path, seconds: int) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [py_spy(), "record", "-f", "raw", "-d", str(seconds), "-p", str(pid), "-o", str(out)]
        self.command = command
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self, timeout: float = 30) -> str:
        """Stop sampling and wait for the file; returns py-spy's stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=timeout)
        return err


@dataclass(frozen=True)
class Profile:
    """Samples per function: own (the leaf frame) and cumulative (anywhere in
    the stack, once per sample even under recursion).
    """

    total: int
    own: Counter[str]
    cumulative: Counter[str]
    categories: Counter[str]


def function_of(frame: str) -> str:
    """``func (file:line)`` without the line, so a function's lines add up."""
    match = FRAME.match(frame)
    return f"{match['func']} ({match['file']})" if match else frame


def category_of(function: str) -> str:
    match = FRAME.match(function)
    top = (match["file"] if match else function).split("/", 1)[0]
    return CATEGORIES.get(top, f"other ({top})")


def parse(text: str) -> Profile:
    """Read py-spy's raw (collapsed-stack) output."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        functions = [function_of(f) for f in stack.split(";")]
        total += samples
        own[functions[-1]] += samples
        categories[category_of(functions[-1])] += samples
        for function in set(functions):
            cumulative[function] += samples
    return Profile(total, own, cumulative, categories)


def shorten(function: str, width: int = 100) -> str:
    """Drop the site-packages prefix, which says nothing, to fit a line."""
    short = re.sub(r"\(.*?/(site-packages|lib/python3\.\d+)/", "(", function)
    short = short.replace(str(pathlib.Path(__file__).resolve().parents[2]) + "/", "")
    return short if len(short) <= width else short[: width - 1] + "…"


def report(profile: Profile, top: int = 25) -> str:
    """Top functions by own and by cumulative samples, and own samples per category."""
    lines = [f"py-spy: {profile.total} samples"]
    for title, counter in (("own", profile.own), ("cumulative", profile.cumulative)):
        lines.append(f"\ntop {top} by {title} samples:")
        for function, samples in counter.most_common(top):
            lines.append(f"  {samples:>6} {100 * samples / max(1, profile.total):5.1f}%  {shorten(function)}")
    lines.append("\nown samples by where the leaf function lives:")
    for name, samples in profile.categories.most_common():
        lines.append(f"  {samples:>6} {100 * samples / max(1, profile.total):5.1f}%  {name}")
    return "\n".join(lines)
