"""obskit's sample store: label children resolved once, observations kept in plain numbers.

prometheus-client's own histogram takes a lock per bucket value and scans its bounds linearly on
every observation. On obskit's hot path (one decorated call, one HTTP request) that is most of the
cost, so the store keeps its own children instead:

* a family maps a label-value tuple to a child, created once and then found by one dict lookup;
* a histogram child finds its bucket with ``bisect`` and updates non-cumulative counts and the sum
  under one uncontended lock; an in-flight gauge is two ``itertools.count`` objects (their
  ``__next__`` is atomic under the GIL and needs no lock at all);
* a scrape turns children into prometheus-client ``Metric`` objects, so exposition (text and
  OpenMetrics, exemplars included) stays prometheus-client's.

In multi-process mode (several workers of one server) the same families write
prometheus-client's memory-mapped files instead, which its ``MultiProcessCollector`` aggregates;
the families then expose nothing themselves. Choosing the child class happens once, at
construction: the hot path never asks which mode it is in.

Every family is bounded: past ``max_children`` label sets, new ones fold into one child whose
labels are all ``__other__``, counted in ``obskit_label_overflow_total{label="<family>"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from obskit import _locks
from obskit.metrics import catalogue
from obskit.metrics._children import (
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    PairObserver,
    bucket_label,
    observe_pair,
)
from obskit.metrics._mp_children import MpCounter, MpGauge, MpHistogram
from obskit.metrics.catalogue import OVERFLOW, SEMCONV_DURATION_BUCKETS
from obskit.metrics.catalogue import Family as Declared

__all__ = [
    "OVERFLOW",
    "SEMCONV_DURATION_BUCKETS",
    "CounterChild",
    "Family",
    "GaugeChild",
    "HistogramChild",
    "PairObserver",
    "Store",
    "observe_pair",
]

DEFAULT_MAX_CHILDREN = 10_000

Extra = tuple[tuple[str, str], ...]


# --- families ----------------------------------------------------------------------------------

C = TypeVar("C")


class Family(Generic[C]):
    """A metric family: label values -> child, each child created once and cached."""

    def __init__(
        self,
        store: Store,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        make: Callable[[tuple[str, ...], Extra], C],
        *,
        max_children: int,
    ) -> None:
        self.kind = kind
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._store = store
        self._make = make
        self._max = max_children
        self._children: dict[Any, C] = {}
        self._lock = _locks.lock()

    def labels(self, *values: str) -> C:
        """The child for these label values (positional, in ``labelnames`` order)."""
        child = self._children.get(values)
        return child if child is not None else self.child(values)

    def child(self, values: tuple[str, ...], extra: Extra = ()) -> C:
        """The child for ``values`` plus ``extra`` (name, value) labels of this series only."""
        key = (values, extra) if extra else values
        child = self._children.get(key)
        if child is not None:
            return child
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values!r}")
        with self._lock:
            child = self._children.get(key)
            if child is None:
                if len(self._children) >= self._max:
                    self._store.overflowed(self.name)
                    return self._overflow_child(extra)
                child = self._make(tuple(str(v) for v in values), extra)
                self._children[key] = child
        return child

    def _overflow_child(self, extra: Extra) -> C:
        # Called with the lock held; the folded child does not count against the cap.
        values = (OVERFLOW,) * len(self.labelnames)
        folded = tuple((name, OVERFLOW) for name, _ in extra)
        key = ("overflow", values, folded)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._make(values, folded)
        return child

    def children(self) -> list[C]:
        """A snapshot of the children (for collection)."""
        return list(self._children.values())

    def clear(self) -> None:
        """Forget every child (in a forked child process, whose counts start afresh).

        Runs in the child's fork hook, where the process has one thread: it takes no lock, since
        waiting there on one the parent's other threads held would hang the child.
        """
        self._children = {}


class Store(Collector):
    """The families of one runtime (or of one explicit registry), and their collector.

    ``values`` is prometheus-client's memory-mapped value class in multi-process mode, None
    otherwise. ``count_name`` on a histogram also exposes its observation count as a counter.
    """

    def __init__(
        self,
        *,
        values: Any = None,
        max_children: int = DEFAULT_MAX_CHILDREN,
        overflow_family: bool = True,
    ) -> None:
        self.multiprocess = values is not None
        self._values = values
        self._max_children = max_children
        self._families: dict[str, tuple[Family[Any], dict[str, Any]]] = {}
        self._lock = _locks.lock()
        # The lock of the children of families made with shared_lock.
        self._shared_lock = _locks.lock()
        # A store on a user's registry next to the runtime's leaves the overflow family to the
        # runtime's store (one family name per registry) and only counts here.
        self.overflow: Family[CounterChild] | None = None
        self.evictions: Family[CounterChild] | None = None
        self.overflow_count = 0
        if overflow_family:
            self.overflow = self.declare(catalogue.LABEL_OVERFLOW)
            self.evictions = self.declare(catalogue.LABEL_EVICTIONS)

    def overflowed(self, label: str) -> None:
        """Count one value of ``label`` (a label name or a family name) folded into __other__."""
        self.overflow_count += 1
        if self.overflow is not None:
            self.overflow.labels(label).inc()

    def evicted(self, label: str) -> None:
        """Count one guarded value of ``label`` that lost its slot (series churn)."""
        if self.evictions is not None:
            self.evictions.labels(label).inc()

    # --- family constructors (idempotent by name) ----------------------------------------------

    def _family(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        make: Callable[[tuple[str, ...], Extra], Any],
        **meta: Any,
    ) -> Family[Any]:
        with self._lock:
            known = self._families.get(name)
            if known is not None:
                family = known[0]
                if family.kind != kind or family.labelnames != tuple(labelnames):
                    raise ValueError(f"metric family {name} already exists with other labels")
                return family
            family = Family(
                self, kind, name, documentation, labelnames, make, max_children=self._max_children
            )
            self._families[name] = (family, meta)
            return family

    def declare(
        self, entry: Declared, *, count: Declared | None = None, shared_lock: bool = False
    ) -> Family[Any]:
        """The family of catalogue ``entry``: its name, help, labels and buckets from there.

        ``count`` (a counter entry) also exposes a histogram's count under that name;
        ``shared_lock`` as for :meth:`histogram`. A gauge summed over workers (``workers="sum"``)
        is aggregated ``livesum`` in multi-process mode, a per-worker one ``liveall``.
        """
        if entry.type == "counter":
            return self.counter(entry.name, entry.help, entry.labels)
        if entry.type == "gauge":
            mode = "liveall" if entry.workers == "pid" else "livesum"
            return self.gauge(entry.name, entry.help, entry.labels, multiprocess_mode=mode)
        if entry.type == "histogram":
            return self.histogram(
                entry.name,
                entry.help,
                entry.labels,
                entry.buckets,
                count_name=count.name if count is not None else None,
                count_documentation=count.help if count is not None else "",
                shared_lock=shared_lock,
            )
        raise ValueError(f"{entry.name}: the store holds no {entry.type} families")

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> Family[Any]:
        """A counter family (``name`` without ``_total``)."""
        names = tuple(labelnames)

        def make(values: tuple[str, ...], extra: Extra) -> Any:
            keys, vals = _join(names, values, extra)
            if self._values is None:
                return Counter(dict(zip(keys, vals, strict=True)))
            return MpCounter(
                self._values("counter", name, name + "_total", keys, vals, documentation)
            )

        return self._family("counter", name, documentation, names, make)

    def gauge(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        multiprocess_mode: str = "livesum",
    ) -> Family[Any]:
        """A gauge family; in multi-process mode aggregated by ``multiprocess_mode``."""
        names = tuple(labelnames)

        def make(values: tuple[str, ...], extra: Extra) -> Any:
            keys, vals = _join(names, values, extra)
            if self._values is None:
                return Gauge(dict(zip(keys, vals, strict=True)))
            value = self._values(
                "gauge", name, name, keys, vals, documentation, multiprocess_mode=multiprocess_mode
            )
            return MpGauge(value)

        return self._family("gauge", name, documentation, names, make)

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] = SEMCONV_DURATION_BUCKETS,
        *,
        count_name: str | None = None,
        count_documentation: str = "",
        shared_lock: bool = False,
    ) -> Family[Any]:
        """A histogram family; ``count_name`` also exposes the count as a counter family.

        ``shared_lock``: its (single-process) children use the store's shared lock, so that
        :func:`observe_pair` takes one lock for two families observed together.
        """
        names = tuple(labelnames)
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be increasing")

        def make(values: tuple[str, ...], extra: Extra) -> Any:
            keys, vals = _join(names, values, extra)
            if self._values is None:
                lock = self._shared_lock if shared_lock else None
                return Histogram(dict(zip(keys, vals, strict=True)), bounds, lock)
            les = [bucket_label(b) for b in bounds] + ["+Inf"]
            new = self._values
            bucket_values = [
                new("histogram", name, name + "_bucket", (*keys, "le"), (*vals, le), documentation)
                for le in les
            ]
            total = new("histogram", name, name + "_sum", keys, vals, documentation)
            count = None
            if count_name is not None:
                count = new(
                    "counter", count_name, count_name + "_total", keys, vals, count_documentation
                )
            return MpHistogram(bounds, bucket_values, total, count)

        return self._family(
            "histogram",
            name,
            documentation,
            names,
            make,
            count_name=count_name,
            count_documentation=count_documentation,
        )

    # --- collection ----------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every child of every family (after a fork, in the child; takes no lock).

        Every lock of the store and its children is re-made in the child by :mod:`obskit._locks`.
        """
        for family, _ in list(self._families.values()):
            family.clear()

    def collect(self) -> Iterator[Metric]:
        """prometheus-client metrics for every family (nothing in multi-process mode)."""
        if self.multiprocess:
            return
        for family, meta in list(self._families.values()):
            if family.kind == "histogram":
                yield from _collect_histogram(family, meta)
            elif family.kind == "counter":
                metric = Metric(family.name, family.documentation, "counter")
                sample_name = family.name + "_total"
                metric.samples = [Sample(sample_name, c.labels, c.value) for c in family.children()]
                yield metric
            else:
                metric = Metric(family.name, family.documentation, "gauge")
                metric.samples = [
                    Sample(family.name, c.labels, c.value()) for c in family.children()
                ]
                yield metric


def _collect_histogram(family: Family[Any], meta: dict[str, Any]) -> Iterator[Metric]:
    name = family.name
    bucket_name, count_name, sum_name = name + "_bucket", name + "_count", name + "_sum"
    metric = Metric(name, family.documentation, "histogram")
    samples = metric.samples
    totals: list[tuple[dict[str, str], int]] = []
    for child in family.children():
        counts, total = child.snapshot()
        exemplars = child.exemplars
        labels = child.bucket_labels
        cumulative = 0
        for index, count in enumerate(counts):
            cumulative += count
            samples.append(
                Sample(bucket_name, labels[index], cumulative, None, exemplars.get(index))
            )
        samples.append(Sample(count_name, child.labels, cumulative))
        samples.append(Sample(sum_name, child.labels, total))
        totals.append((child.labels, cumulative))
    yield metric
    if meta.get("count_name"):
        counter = Metric(meta["count_name"], meta["count_documentation"], "counter")
        sample_name = meta["count_name"] + "_total"
        counter.samples = [Sample(sample_name, labels, value) for labels, value in totals]
        yield counter


def _join(
    names: tuple[str, ...], values: tuple[str, ...], extra: Extra
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not extra:
        return names, values
    return (*names, *(k for k, _ in extra)), (*values, *(v for _, v in extra))
