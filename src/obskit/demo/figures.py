"""How the report writes numbers, and reading the run's recorded scrapes back.

Numbers: counts as whole numbers, durations in milliseconds to three significant figures (never
``0.000`` beside ``425``), shares as percentages, each column in one unit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from obskit.demo.analysis import Scrape

__all__ = ["Recorded", "count", "evidence", "ms", "percent", "sig"]


def sig(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, never in exponent form; ``-`` for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def evidence(value: float | None) -> str:
    """An e-value: three significant figures, powers of ten from 10 000 on (``4.12e5``)."""
    if value is None:
        return "-"
    if value >= 1e4:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return sig(value)


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds, three significant figures."""
    return "-" if seconds is None else sig(seconds * 1000)


def percent(share: float | None) -> str:
    """A share as a percentage with up to two decimals (``0%`` when nothing)."""
    if share is None:
        return "-"
    if share == 0:
        return "0%"
    return f"{share * 100:.2f}%" if share < 0.1 else f"{share * 100:.1f}%"


def count(value: float | None) -> str:
    """A count, whole."""
    return "-" if value is None else f"{value:.0f}"


class Recorded:
    """The run's scrapes (``scrapes.jsonl`` and the files it names), by sequence and instance."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: list[dict[str, Any]] = []
        index = out / "scrapes.jsonl"
        if index.exists():
            self.rows = [json.loads(line) for line in index.read_text().splitlines() if line]
        self._parsed: dict[str, Scrape] = {}

    def scrape(self, row: dict[str, Any]) -> Scrape:
        """One recorded exposition, parsed (cached)."""
        name = str(row["file"])
        if name not in self._parsed:
            self._parsed[name] = Scrape((self.out / name).read_text(encoding="utf-8"))
        return self._parsed[name]

    def last(self, instance: str, phase: str | None = None) -> dict[str, Any] | None:
        """The last scrape of ``instance`` (in ``phase``, when given)."""
        found = [
            r
            for r in self.rows
            if r["instance"] == instance and (phase is None or r["phase"] == phase)
        ]
        return found[-1] if found else None

    def first(self, instance: str, phase: str) -> dict[str, Any] | None:
        """The first scrape of ``instance`` in ``phase``."""
        found = [r for r in self.rows if r["instance"] == instance and r["phase"] == phase]
        return found[0] if found else None

    def instances(self) -> list[str]:
        """Every instance scraped, in order of first appearance."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen[row["instance"]] = None
        return list(seen)


def bucket_counts(scrapes: Iterable[Scrape], name: str, **labels: str) -> dict[float, float]:
    """Cumulative ``{le: count}`` of histogram ``name`` summed over scrapes and series."""
    out: dict[float, float] = {}
    for scrape in scrapes:
        for sample in scrape.find(f"{name}_bucket", **labels):
            edge = float(sample.labels["le"])
            out[edge] = out.get(edge, 0.0) + sample.value
    return out


def difference(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    """Bucket counts between two scrapes of the same processes."""
    return {edge: value - before.get(edge, 0.0) for edge, value in after.items()}
