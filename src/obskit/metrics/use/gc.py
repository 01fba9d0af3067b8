"""Garbage-collector pauses per generation, recorded without taking any lock.

prometheus-client once observed a histogram from inside ``gc.callbacks`` and removed it after it
deadlocked: a collection can start in any thread at any allocation, including one that already
holds the lock the callback wants (a metric's lock during a scrape, the registry's lock). Here the
callback only reads a clock, finds a bucket with :func:`bisect.bisect_left` (C code, no lock) and
increments slots of preallocated lists. CPython runs at most one collection at a time, so the
callback is the only writer; a scrape copies the lists and builds the histograms.

Families: ``obskit_gc_pause_seconds{cpython_gc_generation}`` (histogram, since the callback was
installed) and, from :func:`gc.get_stats` (since the interpreter started),
``cpython_gc_collections_total``, ``cpython_gc_collected_objects_total`` and
``cpython_gc_uncollectable_objects_total``, each by ``cpython_gc_generation``.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from obskit.metrics import catalogue
from obskit.metrics.use.collector import (
    FamilySpec,
    Notes,
    Reading,
    cumulative_buckets,
    empty_families,
    histogram_of,
    standalone_collect,
)

__all__ = ["DEFAULT_BUCKETS", "GcCollector"]

DEFAULT_BUCKETS = catalogue.GC_PAUSE.buckets
_GENERATIONS = 3

GcCallback = Callable[[str, dict[str, Any]], None]


def _make_callback(
    bounds: tuple[float, ...], counts: list[list[int]], sums: list[float], errors: list[int]
) -> GcCallback:
    """The ``gc.callbacks`` entry: clock, bisect and list increments only — never a lock."""
    clock = time.perf_counter
    started = [0.0]
    last = _GENERATIONS - 1

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        try:
            if phase == "start":
                started[0] = clock()
                return
            elapsed = clock() - started[0]
            generation = info["generation"]
            if generation > last:  # a future CPython with more generations: count as the oldest
                generation = last
            counts[generation][bisect_left(bounds, elapsed)] += 1
            sums[generation] += elapsed
        except Exception:  # an exception here would be printed as unraisable; count it instead
            errors[0] += 1

    return on_gc


class GcCollector:
    """USE source for the garbage collector; :meth:`start` installs the callback."""

    name = "gc"

    def __init__(self, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._counts: list[list[int]] = []
        self._sums: list[float] = []
        self._errors = [0]
        self._callback: GcCallback | None = None
        self._reset()

    def _reset(self) -> None:
        # Fresh lists, bound into a fresh callback: the old callback (if still running in
        # another thread) keeps writing into the lists it was given, never into these.
        self._counts = [[0] * (len(self._bounds) + 1) for _ in range(_GENERATIONS)]
        self._sums = [0.0] * _GENERATIONS
        self._errors = [0]

    def start(self) -> None:
        """Install the GC callback (idempotent)."""
        if self._callback is not None and self._callback in gc.callbacks:
            return
        self._callback = _make_callback(self._bounds, self._counts, self._sums, self._errors)
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Remove the GC callback."""
        callback, self._callback = self._callback, None
        if callback is not None:
            try:
                gc.callbacks.remove(callback)
            except ValueError:
                pass

    def after_fork_in_child(self) -> None:
        """Start the child's pause histogram from zero (the parent's pauses are not its own)."""
        running = self._callback is not None
        self.stop()
        self._reset()
        if running:
            self.start()

    def describe(self) -> list[Metric]:
        """Empty families with every name this source may yield."""
        return empty_families(_FAMILIES)

    def collect(self) -> Iterator[Metric]:
        """Families plus ``obskit_collector_up`` when registered on its own."""
        return standalone_collect(self)

    def read(self, notes: Notes) -> list[Metric]:
        """Aggregate the callback's counts and read :func:`gc.get_stats`."""
        reading = Reading(_FAMILIES)
        for generation, stats in enumerate(gc.get_stats()):
            label = (str(generation),)
            reading.put(catalogue.GC_COLLECTIONS.name, stats.get("collections"), label)
            reading.put(catalogue.GC_COLLECTED.name, stats.get("collected"), label)
            reading.put(catalogue.GC_UNCOLLECTABLE.name, stats.get("uncollectable"), label)
        families = reading.families()
        if self._callback is None:
            notes.append("gc_callback_not_installed")
            return families
        pauses = histogram_of(catalogue.GC_PAUSE)
        for generation in range(_GENERATIONS):
            counts = list(self._counts[generation])  # a snapshot: the callback may run meanwhile
            buckets = cumulative_buckets(self._bounds, counts)
            pauses.add_metric([str(generation)], buckets, self._sums[generation])
        families.append(pauses)
        if self._errors[0]:
            notes.append("gc_callback_errors")
        return families


_FAMILIES: tuple[FamilySpec, ...] = catalogue.group("use.gc")
