"""Recorded scrapes as a time-series store, the way Prometheus keeps what it scrapes.

Each scrape of a target adds one sample per series, at the scrape's time, with the target's
``job`` and ``instance`` labels. A series absent from a later scrape of its target, and every
series of a target that is no longer scraped, gets a staleness marker (NaN) at the next scrape
time, so an instant query stops returning it, as Prometheus does.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["Labels", "Store", "parse_exposition"]

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, __name__ included
STALE = math.nan

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse_exposition(text: str) -> dict[Labels, float]:
    """The samples of a Prometheus text exposition (``# `` lines and exemplars skipped)."""
    out: dict[Labels, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, _, body, value = match.groups()
        labels = {"__name__": name}
        if body:
            labels.update((k, _unescape(v)) for k, v in _LABEL.findall(body))
        try:
            number = float(value)
        except ValueError:
            continue
        out[tuple(sorted(labels.items()))] = number
    return out


class Store:
    """Series from scrapes: ``add(target, at, text)`` in time order, then query."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.series: dict[Labels, tuple[list[float], list[float]]] = {}
        self.by_name: dict[str, list[Labels]] = {}
        self._last_of_target: dict[tuple[str, str], set[Labels]] = {}
        self._last_time: dict[tuple[str, str], float] = {}
        self.end = -math.inf

    def append(self, labels: Labels, at: float, value: float) -> None:
        """One sample (samples of a series must come in time order)."""
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = ([], [])
            self.by_name.setdefault(dict(labels).get("__name__", ""), []).append(labels)
        times, values = found
        if times and at <= times[-1]:
            return
        times.append(at)
        values.append(value)
        self.end = max(self.end, at)

    def add(self, job: str, instance: str, at: float, samples: Mapping[Labels, float]) -> None:
        """One scrape of the target ``(job, instance)`` at ``at``."""
        target = (job, instance)
        extra = (("instance", instance), ("job", job))
        seen: set[Labels] = set()
        for labels, value in samples.items():
            full = tuple(
                sorted((*[kv for kv in labels if kv[0] not in ("job", "instance")], *extra))
            )
            seen.add(full)
            self.append(full, at, value)
        for gone in self._last_of_target.get(target, set()) - seen:
            self.append(gone, at, STALE)
        self._last_of_target[target] = seen
        self._last_time[target] = at

    def close(self) -> None:
        """Targets not scraped at the last time go stale one interval after their last scrape."""
        for target, at in self._last_time.items():
            if at < self.end:
                for labels in self._last_of_target.get(target, set()):
                    self.append(labels, at + self.interval, STALE)

    @classmethod
    def from_index(cls, out: Path, interval: float, rows: Iterable[Mapping[str, object]]) -> Store:
        """A store from ``scrapes.jsonl``-style rows (``at``, ``instance``, ``file``); the job
        is the instance's name up to its first ``-`` (``shop-1`` is job ``shop``)."""
        store = cls(interval)
        for row in sorted(rows, key=lambda r: (float(str(r["at"])), str(r["instance"]))):
            instance = str(row["instance"])
            text = (out / str(row["file"])).read_text(encoding="utf-8")
            store.add(
                instance.split("-")[0], instance, float(str(row["at"])), parse_exposition(text)
            )
        store.close()
        return store

    @classmethod
    def from_directory(cls, out: Path, interval: float) -> Store:
        """A store from ``out/scrapes.jsonl``."""
        rows = [
            json.loads(line) for line in (out / "scrapes.jsonl").read_text().splitlines() if line
        ]
        return cls.from_index(out, interval, rows)

    def at(self, labels: Labels, moment: float, lookback: float) -> float | None:
        """The series' value at ``moment`` (latest sample within ``lookback``, unless stale)."""
        times, values = self.series[labels]
        index = bisect.bisect_right(times, moment) - 1
        if index < 0 or moment - times[index] > lookback:
            return None
        value = values[index]
        return None if math.isnan(value) else value

    def window(self, labels: Labels, start: float, end: float) -> list[tuple[float, float]]:
        """Samples in ``[start, end]`` (both ends, as Prometheus 2.x selects a range), staleness
        markers left out."""
        times, values = self.series[labels]
        low = bisect.bisect_left(times, start)
        high = bisect.bisect_right(times, end)
        return [(times[i], values[i]) for i in range(low, high) if not math.isnan(values[i])]
