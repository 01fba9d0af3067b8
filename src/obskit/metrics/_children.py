"""The store's single-process children: plain numbers under one uncontended lock.

A histogram child finds its bucket with ``bisect`` and updates non-cumulative counts and the sum
under its lock; an in-flight gauge is two ``itertools.count`` objects (their ``__next__`` is
atomic under the GIL and needs no lock at all). :func:`observe_pair` records a request's two
histograms (duration, time to first byte) under one acquisition when they share a lock.
The protocols every child meets (:class:`CounterChild`, :class:`GaugeChild`,
:class:`HistogramChild`) are declared here, beside the children; the multi-process children
(:mod:`obskit.metrics._mp_children`) meet them too.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections.abc import Callable
from threading import Lock
from typing import Protocol

from prometheus_client.samples import Exemplar

from obskit import _locks
from obskit.logs.exemplars import exemplar_labels
from obskit.metrics.catalogue import le as bucket_label

__all__ = [
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "PairObserver",
    "bucket_label",
    "observe_pair",
]


class CounterChild(Protocol):
    """One counter series."""

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0)."""


class GaugeChild(Protocol):
    """One gauge series; ``enter``/``leave`` are the cheap +1/-1 of an in-flight count."""

    enter: Callable[[], object]
    leave: Callable[[], object]

    def set(self, value: float) -> None:
        """Set the value."""


class HistogramChild(Protocol):
    """One histogram series."""

    def observe(self, value: float) -> None:
        """Count one observation."""

    def exemplar(self, value: float, trace_id: int) -> None:
        """Attach ``trace_id`` as the exemplar of the bucket ``value`` falls in."""


def _count_value(counter: itertools.count[int]) -> int:
    # ``itertools.count`` has no public accessor; its repr is ``count(N)``.
    return int(repr(counter)[6:-1])


class Counter:
    __slots__ = ("_lock", "labels", "value")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.value = 0.0
        self._lock = _locks.lock()

    def inc(self, amount: float = 1.0) -> None:
        lock = self._lock  # acquire/release rather than ``with``: half the cost
        lock.acquire()
        try:
            self.value += amount
        finally:
            lock.release()


class Gauge:
    __slots__ = ("_base", "_down", "_lock", "_up", "enter", "labels", "leave")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self._up = itertools.count()
        self._down = itertools.count()
        self._base = 0.0
        self._lock = _locks.lock()
        # Bound C methods: one call, no lock, no Python frame.
        self.enter = self._up.__next__
        self.leave = self._down.__next__

    def set(self, value: float) -> None:
        with self._lock:
            self._base = value - (_count_value(self._up) - _count_value(self._down))

    def value(self) -> float:
        down = _count_value(self._down)  # read leaves first: the value can only be high, not < 0
        return self._base + _count_value(self._up) - down


class Histogram:
    __slots__ = ("_bounds", "_lock", "bucket_labels", "counts", "exemplars", "labels", "sum")

    def __init__(
        self, labels: dict[str, str], bounds: tuple[float, ...], lock: Lock | None = None
    ) -> None:
        self.labels = labels
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self._lock = lock if lock is not None else _locks.lock()
        self.exemplars: dict[int, Exemplar] = {}
        les = [bucket_label(b) for b in bounds] + ["+Inf"]
        self.bucket_labels = [{**labels, "le": le} for le in les]

    def observe(self, value: float) -> None:
        index = bisect_left(self._bounds, value)
        # acquire/release rather than ``with``: half the cost, on every observation.
        lock = self._lock
        lock.acquire()
        try:
            self.counts[index] += 1
            self.sum += value
        finally:
            lock.release()

    def exemplar(self, value: float, trace_id: int) -> None:
        index = bisect_left(self._bounds, value)
        # One dict store replaces the bucket's previous exemplar atomically; bounded by buckets.
        # Its labels pass the redaction policy (and Prometheus's 128-character cap).
        labels = exemplar_labels({"trace_id": f"{trace_id:032x}"})
        self.exemplars[index] = Exemplar(labels, value, time.time())

    def snapshot(self) -> tuple[list[int], float]:
        with self._lock:
            return self.counts[:], self.sum


PairObserver = Callable[[float, float | None], None]


def observe_pair(first: HistogramChild, second: HistogramChild) -> PairObserver:
    """One call that observes a value in ``first`` and, unless it is None, one in ``second``.

    Two single-process children that share their lock and bounds (families created with
    ``shared_lock``) are updated under one acquisition, each bucket found by one bisection; any
    other pair is observed child by child.
    """
    if (
        type(first) is Histogram
        and type(second) is Histogram
        and first._lock is second._lock
        and first._bounds == second._bounds
    ):
        return _locked_pair(first, second)
    first_observe, second_observe = first.observe, second.observe

    def observe(value: float, other: float | None) -> None:
        first_observe(value)
        if other is not None:
            second_observe(other)

    return observe


def _locked_pair(first: Histogram, second: Histogram) -> PairObserver:
    lock, bounds, counts, other_counts = first._lock, first._bounds, first.counts, second.counts

    def observe(value: float, other: float | None) -> None:
        index = bisect_left(bounds, value)
        if other is None:
            lock.acquire()
            try:
                counts[index] += 1
                first.sum += value
            finally:
                lock.release()
            return
        other_index = bisect_left(bounds, other)
        lock.acquire()
        try:
            counts[index] += 1
            first.sum += value
            other_counts[other_index] += 1
            second.sum += other
        finally:
            lock.release()

    return observe
