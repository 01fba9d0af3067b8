"""The frame every USE collector shares: status reporting, worker identity, error isolation.

A *source* (process, cgroup, event loop, ...) knows how to read one resource and yields
prometheus-client metric families. :class:`UseCollector` is the single object registered on a
registry: it reads each source at scrape time and adds two families of its own,

- ``obskit_collector_up{collector}``: 1 when the source could be read, 0 when it could not;
- ``obskit_collector_unavailable_info{collector,reason}``: why a source (or part of one) is
  missing — ``not_linux``, ``no_cgroup``, ``permission_denied``, ``psi_not_offered``, ... —

so a missing series always comes with its explanation instead of a silent empty result. One
composite (rather than one registered collector per source) keeps each family name emitted once
per scrape, which the exposition formats require.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from obskit import _guard, _locks
from obskit.metrics import catalogue

__all__ = [
    "FamilySpec",
    "Notes",
    "Reading",
    "Source",
    "Unavailable",
    "UseCollector",
    "attach",
    "counter_of",
    "cumulative_buckets",
    "empty_families",
    "gauge_of",
    "histogram_of",
    "info_of",
    "standalone_collect",
]


class Unavailable(Exception):
    """Raised by a source that cannot read its resource at all; ``reason`` is a fixed token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Reasons for parts of a source that are missing while the rest works (e.g. no PSI on this kernel).
Notes = list[str]


# One row of a source's family table: the catalogue's entry.
FamilySpec = catalogue.Family


def counter_of(spec: FamilySpec) -> CounterMetricFamily:
    """An empty counter family for catalogue entry ``spec``."""
    return CounterMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def gauge_of(spec: FamilySpec) -> GaugeMetricFamily:
    """An empty gauge family for catalogue entry ``spec``."""
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def histogram_of(spec: FamilySpec) -> HistogramMetricFamily:
    """An empty histogram family for catalogue entry ``spec`` (buckets come with each sample)."""
    return HistogramMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def info_of(spec: FamilySpec) -> InfoMetricFamily:
    """An empty info family for catalogue entry ``spec``."""
    return InfoMetricFamily(spec.name, spec.help, labels=list(spec.labels))


_BUILDERS = {"counter": counter_of, "gauge": gauge_of, "histogram": histogram_of, "info": info_of}


def _build(spec: FamilySpec) -> Metric:
    return _BUILDERS[spec.type](spec)


def empty_families(specs: Sequence[FamilySpec]) -> list[Metric]:
    """One empty family per spec (what ``describe()`` returns)."""
    return [_build(spec) for spec in specs]


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one for +Inf) as the cumulative ``(le, count)`` pairs."""
    labels = [*(catalogue.le(bound) for bound in bounds), "+Inf"]
    cumulative, buckets = 0, []
    for label, count in zip(labels, counts, strict=True):
        cumulative += count
        buckets.append((label, float(cumulative)))
    return buckets


class Reading:
    """The families of one scrape, built from a spec table; a value of None is left out."""

    def __init__(self, specs: Sequence[FamilySpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._families: dict[str, Metric] = {}

    def put(self, name: str, value: float | None, labels: Sequence[str] = ()) -> None:
        """Add one sample to family ``name`` (declared in the table) unless ``value`` is None."""
        if value is None:
            return
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _build(self._specs[name])
        family.add_metric(list(labels), float(value))  # type: ignore[attr-defined]

    def families(self) -> list[Metric]:
        """The families that received at least one sample, in the order they first did."""
        return list(self._families.values())


class Source(Protocol):
    """One resource read at scrape time."""

    # Name in ``obskit_collector_up{collector=...}``; also the settings' collector name.
    name: str

    def read(self, notes: Notes) -> Iterable[Metric]:
        """Yield metric families; raise :class:`Unavailable`; append reasons for missing parts."""
        ...

    def describe(self) -> Iterable[Metric]:
        """Empty families with every name this source may yield (the registry's clash check)."""
        ...


class UseCollector:
    """A prometheus-client collector reading every source at scrape time, one failure at a time."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    def describe(self) -> Iterator[Metric]:
        """Empty families with every name this collector may yield, so clashes fail at register."""
        yield gauge_of(catalogue.COLLECTOR_UP)
        yield info_of(catalogue.COLLECTOR_UNAVAILABLE)
        seen: set[str] = set()
        for source in self.sources:
            for family in source.describe():
                # A family shared by two sources is described once (unregister needs that).
                if family.name not in seen:
                    seen.add(family.name)
                    yield family

    def collect(self) -> Iterator[Metric]:
        """Read each source; a failing source is reported and marked down, the others go on."""
        up = gauge_of(catalogue.COLLECTOR_UP)
        why = info_of(catalogue.COLLECTOR_UNAVAILABLE)
        merged: dict[str, Metric] = {}
        for source in self.sources:
            notes: Notes = []
            try:
                families = list(source.read(notes))
            except Unavailable as exc:
                families, ok = [], False
                notes.insert(0, exc.reason)
            except Exception as exc:
                _guard.report(f"collectors.{source.name}", exc)
                families, ok = [], False
                notes.insert(0, "read_error")
            else:
                ok = True
            up.add_metric([source.name], 1.0 if ok else 0.0)
            for reason in dict.fromkeys(notes):  # de-duplicated, order kept
                why.add_metric([source.name, reason], {})
            for family in families:
                # Two sources may report into one family (the tracked-objects self-metric):
                # the exposition needs each name once.
                first = merged.setdefault(family.name, family)
                if first is not family:
                    first.samples.extend(family.samples)
        yield from merged.values()
        yield up
        yield why


_attach_lock = _locks.lock()
_attached: weakref.WeakKeyDictionary[CollectorRegistry, UseCollector] = weakref.WeakKeyDictionary()


def attach(registry: CollectorRegistry, sources: Iterable[Source]) -> UseCollector:
    """Add ``sources`` to the one :class:`UseCollector` of ``registry`` (registered on first use).

    Use this rather than registering several UseCollectors on one registry: the status families
    must appear once per exposition. A source whose name is already there is not added twice.
    """
    with _attach_lock:
        collector = _attached.get(registry)
        created = collector is None
        if collector is None:
            collector = _attached[registry] = UseCollector([])
        names = {source.name for source in collector.sources}
        for source in sources:
            if source.name not in names:
                collector.sources.append(source)
                names.add(source.name)
    if created:
        registry.register(collector)
    return collector


def standalone_collect(source: Source) -> Iterator[Metric]:
    """``collect()`` for a source registered on its own: its families plus its status."""
    return UseCollector([source]).collect()
