"""Connection pools and queues: a small generic API with OpenTelemetry's connection-pool names.

``obskit.track_pool(pool, name=..., used=..., idle=..., max=...)`` reads the pool's state at
scrape time through the given callables (each receives the pool, so none needs to capture it) and
returns a :class:`PoolHandle` for what only the acquiring code sees: ``with handle.waiting():``
around an acquisition counts it as pending, times the wait and counts timeouts.
``obskit.track_queue(queue, name=...)`` reports ``qsize()`` against ``maxsize``. Tracked objects
are held weakly (see :mod:`obskit.metrics.use.tracked`).

Families, following the semantic conventions for ``db.client.connection.*``
(label ``db_client_connection_pool_name``):

- ``db_client_connections{db_client_connection_state="idle"|"used"}`` for
  ``db.client.connection.count``: promtool rejects a gauge ending in ``_count``, so the
  ``count`` becomes the plural of the unit (``{connection}``)
- ``db_client_connection_max``, ``db_client_connection_pending_requests``
- ``db_client_connection_wait_time_seconds`` (histogram), ``db_client_connection_timeouts_total``
- ``obskit_queue_depth{queue}``, ``obskit_queue_capacity{queue}``
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from prometheus_client.metrics_core import Metric

from obskit import _locks
from obskit.metrics import catalogue
from obskit.metrics.use.collector import (
    FamilySpec,
    Notes,
    Reading,
    counter_of,
    cumulative_buckets,
    empty_families,
    histogram_of,
    standalone_collect,
)
from obskit.metrics.use.tracked import Trackers, default_trackers

__all__ = ["PoolCollector", "PoolHandle", "Reader", "add_pool"]

WAIT_BUCKETS = catalogue.POOL_WAIT.buckets
# Reads one value of a tracked object at scrape time; None means "not known".
Reader = Callable[[Any], float | None]


class PoolHandle:
    """Event-driven statistics of one tracked pool: pending acquisitions, waits, timeouts."""

    def __init__(self, timeout_errors: tuple[type[BaseException], ...] = (TimeoutError,)) -> None:
        self.timeout_errors = timeout_errors
        self.lock = _locks.lock()  # guards the counts; held for a few increments only
        self.pending = 0
        self.timeouts = 0
        self.wait_counts = [0] * (len(WAIT_BUCKETS) + 1)
        self.wait_sum = 0.0

    def waiting(self) -> _Waiting:
        """Context manager around one acquisition: pending while inside, then a wait sample.

        An exception of one of ``timeout_errors`` counts as a timeout (and no wait sample).
        """
        return _Waiting(self)

    def record_wait(self, seconds: float) -> None:
        """Add one wait-time sample, for code that measures acquisition itself."""
        with self.lock:
            self.wait_counts[bisect_left(WAIT_BUCKETS, seconds)] += 1
            self.wait_sum += seconds

    def record_timeout(self) -> None:
        """Count one acquisition that timed out."""
        with self.lock:
            self.timeouts += 1


class _Waiting:
    __slots__ = ("_handle", "_start")

    def __init__(self, handle: PoolHandle) -> None:
        self._handle = handle
        self._start = 0.0

    def __enter__(self) -> None:
        handle = self._handle
        with handle.lock:
            handle.pending += 1
        self._start = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        waited = time.perf_counter() - self._start
        handle = self._handle
        timed_out = exc_type is not None and issubclass(exc_type, handle.timeout_errors)
        with handle.lock:
            handle.pending -= 1
            if timed_out:
                handle.timeouts += 1
            elif exc_type is None:
                handle.wait_counts[bisect_left(WAIT_BUCKETS, waited)] += 1
                handle.wait_sum += waited


class _PoolEntry:
    __slots__ = ("handle", "idle", "max", "pending", "used")

    def __init__(
        self,
        handle: PoolHandle,
        used: Reader | None,
        idle: Reader | None,
        max: Reader | float | None,
        pending: Reader | None,
    ) -> None:
        self.handle = handle
        self.used, self.idle, self.max, self.pending = used, idle, max, pending


def add_pool(
    trackers: Trackers,
    handle: PoolHandle,
    pool: Any,
    name: str,
    used: Reader | None,
    idle: Reader | None,
    max: Reader | float | None,
    pending: Reader | None,
) -> None:
    """Track ``pool`` as ``name`` in ``trackers``, read through the given callables."""
    trackers.pools.add(pool, name, _PoolEntry(handle, used, idle, max, pending))


class PoolCollector:
    """USE source for tracked connection pools and queues."""

    name = "pools"

    def __init__(self, trackers: Trackers | None = None) -> None:
        self.trackers = trackers if trackers is not None else default_trackers()

    def describe(self) -> list[Metric]:
        """Empty families with every name this source may yield."""
        return empty_families(_FAMILIES)

    def collect(self) -> Iterator[Metric]:
        """Families plus ``obskit_collector_up`` when registered on its own."""
        return standalone_collect(self)

    def read(self, notes: Notes) -> list[Metric]:
        """Read every live tracked pool and queue; a failing reader leaves its series out."""
        reading = Reading(_FAMILIES)
        waits = histogram_of(catalogue.POOL_WAIT)
        for name, pool, entry in self.trackers.pools.live():
            label = (name,)
            used = _call(entry.used, pool, notes)
            idle = _call(entry.idle, pool, notes)
            reading.put("db_client_connections", idle, (name, "idle"))
            reading.put("db_client_connections", used, (name, "used"))
            limit = (
                entry.max if isinstance(entry.max, int | float) else _call(entry.max, pool, notes)
            )
            reading.put("db_client_connection_max", limit, label)
            handle = entry.handle
            with handle.lock:
                pending, timeouts = handle.pending, handle.timeouts
                counts, wait_sum = list(handle.wait_counts), handle.wait_sum
            extra = _call(entry.pending, pool, notes) if entry.pending is not None else 0.0
            reading.put("db_client_connection_pending_requests", pending + (extra or 0.0), label)
            reading.put("db_client_connection_timeouts", timeouts, label)
            waits.add_metric([name], cumulative_buckets(WAIT_BUCKETS, counts), wait_sum)
        for name, queue, _ in self.trackers.queues.live():
            depth = _call(lambda q: q.qsize(), queue, notes)
            reading.put("obskit_queue_depth", depth, (name,))
            capacity = getattr(queue, "maxsize", 0)
            if isinstance(capacity, int) and capacity > 0:
                reading.put("obskit_queue_capacity", capacity, (name,))
        families = reading.families()
        if waits.samples:
            families.append(waits)
        dropped = counter_of(catalogue.TRACKED_DROPPED)
        for tracker in (self.trackers.pools, self.trackers.queues):
            for reason, count in sorted(tracker.dropped.items()):
                dropped.add_metric([tracker.kind, reason], count)
        families.append(dropped)
        return families


def _call(reader: Reader | None, obj: Any, notes: Notes) -> float | None:
    if reader is None:
        return None
    try:
        value = reader(obj)
    except Exception:  # the application's reader: its failure is its series' absence, noted
        notes.append("reader_failed")
        return None
    return float(value) if isinstance(value, int | float) else None


_FAMILIES: tuple[FamilySpec, ...] = catalogue.group("use.pools")
