"""Terminal rendering shared by the command line: aligned tables, headings, a waterfall of bars.

Styling (bold headings, colour) only when writing to a terminal; plain text when piped.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Bar", "Style", "table", "waterfall"]


@dataclasses.dataclass(frozen=True)
class Style:
    """ANSI styling, or none at all."""

    enabled: bool

    @classmethod
    def for_stream(cls, stream: TextIO = sys.stdout) -> Style:
        """Styled on a terminal, plain otherwise."""
        isatty = getattr(stream, "isatty", None)
        return cls(bool(isatty and isatty()))

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def heading(self, text: str) -> str:
        """A section heading."""
        rule = "─" if self.enabled else "-"
        return f"\n{self._wrap('1', text)}\n{rule * min(len(text), 78)}"

    def bad(self, text: str) -> str:
        """Something that needs attention."""
        return self._wrap("31", text)

    def dim(self, text: str) -> str:
        """Secondary detail."""
        return self._wrap("2", text)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    indent: str = "  ",
    right: Sequence[bool] | None = None,
) -> str:
    """Columns aligned: text left, numbers right (``right`` says so per column instead, for
    numbers already formatted as text)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = (
        list(right)
        if right is not None
        else [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]
    )
    lines = []
    for n, row in enumerate(cells):
        parts = [
            text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i])
            for i, text in enumerate(row)
        ]
        lines.append(indent + "  ".join(parts).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Bar:
    """One span in a waterfall."""

    label: str
    start_s: float
    end_s: float
    failed: bool = False


def waterfall(bars: Sequence[Bar], width: int = 44, style: Style | None = None) -> str:
    """Spans as horizontal bars on a shared time axis, with durations in milliseconds."""
    if not bars:
        return "  (no spans)"
    style = style or Style(False)
    origin = min(bar.start_s for bar in bars)
    total = max(max(bar.end_s for bar in bars) - origin, 1e-9)
    label_width = min(max(len(bar.label) for bar in bars), 48)
    lines = []
    for bar in bars:
        begin = int((bar.start_s - origin) / total * width)
        length = max(1, round((bar.end_s - bar.start_s) / total * width))
        length = min(length, width - begin) if begin < width else 1
        track = " " * begin + "█" * length if style.enabled else " " * begin + "#" * length
        track = track.ljust(width)
        millis = f"{(bar.end_s - bar.start_s) * 1000:8.1f} ms"
        label = bar.label[:label_width].ljust(label_width)
        line = f"  {label} |{track}| {millis}"
        lines.append(style.bad(line) if bar.failed else line)
    return "\n".join(lines)
