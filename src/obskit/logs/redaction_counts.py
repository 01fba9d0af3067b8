"""What the redaction policy replaced and cut, counted per signal, and the collector exposing it.

``obskit_redacted_values_total{signal}`` counts secrets replaced by ``[REDACTED]``;
``obskit_truncated_values_total{signal}`` counts values cut by the bounds (``max_value_length``,
the item, depth and walk caps, keys, ints too long to write, exemplar labels).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from obskit import _locks

__all__ = ["SIGNALS", "RedactionCollector", "count", "counts", "reset"]

SIGNALS: Final = ("log", "span", "exemplar")

_lock = _locks.lock()  # re-made in a forked child
_counts: dict[tuple[str, str], int] = {}


def count(outcome: str, signal: str, n: int) -> None:
    """Add ``n`` values ``"redacted"`` or ``"truncated"`` in ``signal``."""
    if not n:
        return
    with _lock:
        key = (outcome, signal)
        _counts[key] = _counts.get(key, 0) + n


def counts() -> dict[tuple[str, str], int]:
    """Values replaced so far, by (``"redacted"`` or ``"truncated"``, signal)."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget the counts (``obskit.testing.reset``)."""
    with _lock:
        _counts.clear()


class RedactionCollector(Collector):
    """``obskit_redacted_values_total`` and ``obskit_truncated_values_total`` by signal."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        """Yield the current counts."""
        from obskit.metrics.catalogue import REDACTED_VALUES, TRUNCATED_VALUES

        now = counts()
        for outcome, declared in (("redacted", REDACTED_VALUES), ("truncated", TRUNCATED_VALUES)):
            family = CounterMetricFamily(declared.name, declared.help, labels=list(declared.labels))
            for signal in SIGNALS:
                family.add_metric([signal], now.get((outcome, signal), 0))
            yield family
