"""How states look in a terminal: a symbol and a colour per phase, and short
durations and ages as kubectl prints them.

Colour is only for a terminal that asked for it (``--color``, ``NO_COLOR``),
and symbols fall back to ASCII where the output encoding cannot carry them,
so a log file or a CI job never fills with escape codes or mojibake.
"""

from __future__ import annotations

from dataclasses import dataclass

# phase -> (unicode symbol, ascii symbol, ANSI SGR colour)
_LOOK: dict[str, tuple[str, str, str]] = {
    "Succeeded": ("✔", "+", "32"),
    "Failed": ("✘", "x", "31"),
    "Running": ("●", "*", "36"),
    "Retrying": ("↻", "r", "33"),
    "Waiting": ("◌", "w", "33"),
    "Pending": ("○", ".", "2"),
    "Skipped": ("⊘", "-", "90"),
    "Cancelled": ("■", "#", "35"),
}
_UNKNOWN = ("?", "?", "0")


@dataclass(frozen=True)
class Painter:
    """Renders a phase as a symbol and text, coloured or not."""

    color: bool = False
    unicode: bool = True

    def symbol(self, phase: str) -> str:
        fancy, plain, _ = _LOOK.get(phase, _UNKNOWN)
        return self.paint(fancy if self.unicode else plain, phase)

    def paint(self, text: str, phase: str) -> str:
        if not self.color or not text:
            return text
        return f"\x1b[{_LOOK.get(phase, _UNKNOWN)[2]}m{text}\x1b[0m"

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.color else text

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.color else text

    @property
    def arrow(self) -> str:
        return "←" if self.unicode else "<-"

    @property
    def ellipsis(self) -> str:
        return "…" if self.unicode else "..."


def fit(text: str, width: int, ellipsis: str = "…") -> str:
    """``text`` cut to ``width`` characters, marked when cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(width - len(ellipsis), 0)] + ellipsis[:width]
