"""Where output goes and how it may look: colour only on a terminal (or
``--color=always``; ``NO_COLOR`` turns it off), Unicode symbols only where
the output encoding has them, the width of the screen for the graph.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from sluice.cli.style import Painter


@dataclass
class Terminal:
    out: TextIO
    err: TextIO
    painter: Painter
    width: int
    interactive: bool

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def say(self, text: str) -> None:
        """Progress and notes: stderr, so stdout stays the answer a script reads."""
        self.err.write(text + "\n")
        self.err.flush()

    def show(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def _encodes(stream: TextIO, sample: str = "✔●○⊘←…") -> bool:
    try:
        sample.encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def open_terminal(color: str = "auto", out: TextIO | None = None, err: TextIO | None = None) -> Terminal:
    out = out or sys.stdout
    err = err or sys.stderr
    interactive = out.isatty()
    if color == "always":
        colored = True
    elif color == "never":
        colored = False
    else:
        colored = interactive and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    columns = os.environ.get("COLUMNS", "")
    if interactive:
        width = shutil.get_terminal_size((100, 24)).columns
    else:
        width = int(columns) if columns.isdigit() else 100
    return Terminal(out, err, Painter(color=colored, unicode=_encodes(out)), width, interactive)
