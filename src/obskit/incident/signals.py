"""Symptoms and the saturation that moved with them, read from Prometheus by one rule.

Each signal is asked once, as a range query of per-interval increases
(``increase(x[step])`` evaluated every ``step`` from the baseline's start to the window's end),
and judged in Python by :mod:`obskit.incident.departures`:

- the HTTP server histogram by route and tenant: the error ratio (``error_type`` set) and the
  latency (the share of requests above the segment's pre-window p99 bucket edge; the p99s are
  reported) — these are the *symptoms*;
- saturation and dependencies, by their own labels: event-loop lag, pool waits, executor queue
  waits, outbound latency and errors by ``server_address`` (histograms, the same rule), pool
  timeouts, requests pending on a pool and CPU throttling (levels).

Metric names come from :mod:`obskit.metrics.catalogue`, PromQL from :mod:`obskit.metrics.promql`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from obskit._prometheus import Prometheus, Series
from obskit.incident import departures
from obskit.incident.departures import Counts, Departure
from obskit.metrics import catalogue, promql
from obskit.metrics.catalogue import Family
from obskit.metrics.promql import Matcher, Selector

__all__ = ["Movement", "Window", "saturation", "symptoms"]

ROUTE, TENANT = "http_route", "tenant_id"
ERROR = Matcher("error_type", "!=", "")
# Below this many baseline events a segment borrows its route's band (then the service's).
MIN_BASELINE = 20


@dataclasses.dataclass(frozen=True)
class Window:
    """What is read: ``[start, end]``, the ``baseline`` seconds before it, in ``step`` intervals,
    from the series ``scope`` selects (the service's targets)."""

    start: float
    end: float
    baseline: float
    step: float
    scope: tuple[Matcher, ...] = ()

    @property
    def first(self) -> float:
        """The end of the first interval read (the baseline's first)."""
        return self.start - self.baseline + self.step

    def increase(self, series: Selector, by: Sequence[str]) -> str:
        """``sum by (by) (increase(series{scope}[step]))``."""
        scoped = series.matching(*self.scope)
        return promql.sum_by(promql.increase(scoped, promql.duration(int(self.step))), by)

    def read(self, prometheus: Prometheus, expr: str) -> list[Series]:
        """The range query of ``expr`` over the baseline and the window."""
        return prometheus.range(expr, self.first, self.end, self.step)


@dataclasses.dataclass(frozen=True)
class Movement:
    """A signal that left its band: what it is, where, how far, and the query behind it.

    ``kind``: ``errors`` (a share), ``latency`` (the share above ``edge`` seconds; the p99s in
    ``p99``: baseline, first interval, worst interval) or ``level``.
    """

    signal: str
    family: str
    labels: dict[str, str]
    kind: str
    departure: Departure
    query: str
    edge: float | None = None
    p99: tuple[float | None, float | None, float | None] = (None, None, None)

    @property
    def where(self) -> str:
        """``route=/checkout tenant=initech`` (the labels, in reading order)."""
        return " ".join(f"{_SHORT.get(k, k)}={v}" for k, v in self.labels.items())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "signal": self.signal,
            "family": self.family,
            "labels": self.labels,
            "kind": self.kind,
            "query": self.query,
            "edge": self.edge,
            "p99": list(self.p99),
            **dataclasses.asdict(self.departure),
        }


_SHORT = {
    ROUTE: "route",
    TENANT: "tenant",
    "server_address": "dependency",
    "db_client_connection_pool_name": "pool",
}


# --- histograms: per-interval counts per key --------------------------------------------------


@dataclasses.dataclass
class _Histogram:
    """Per key (labels without ``le``) and interval end: cumulative counts per bucket edge."""

    by: tuple[str, ...]
    cells: dict[tuple[str, ...], dict[float, dict[float, float]]] = dataclasses.field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )

    def add(self, series: Sequence[Series]) -> None:
        for one in series:
            edge = float(one.labels.get("le", "nan"))
            if math.isnan(edge):
                continue
            key = tuple(one.labels.get(name, "") for name in self.by)
            for at, value in one.points:
                if not math.isnan(value):
                    self.cells[key][at][edge] = value

    def buckets(self, key: tuple[str, ...], times: Sequence[float]) -> list[tuple[float, float]]:
        """Cumulative counts summed over ``times`` (ascending edges, +Inf last)."""
        summed: dict[float, float] = defaultdict(float)
        for at in times:
            for edge, value in self.cells[key].get(at, {}).items():
                summed[edge] += value
        return sorted(summed.items())

    def intervals(self, key: tuple[str, ...], edge: float | None) -> list[Counts]:
        """Per interval: all events, and those above ``edge`` (None: no latency test)."""
        out = []
        for at in sorted(self.cells[key]):
            cell = self.cells[key][at]
            total = cell.get(math.inf, 0.0)
            below = cell.get(edge, total) if edge is not None else total
            out.append(Counts(at, total, max(0.0, total - below)))
        return out


def _baseline(times: Sequence[float], start: float) -> list[float]:
    return [t for t in times if t <= start]


def _p99(buckets: Sequence[tuple[float, float]]) -> float | None:
    return departures.quantile(0.99, buckets)


def _latency(
    histogram: _Histogram,
    key: tuple[str, ...],
    window: Window,
    fallback: Sequence[tuple[float, float]],
) -> tuple[Departure | None, float | None, tuple[float | None, float | None, float | None]]:
    times = sorted(histogram.cells[key])
    base = histogram.buckets(key, _baseline(times, window.start))
    if not base or base[-1][1] < MIN_BASELINE:
        base = list(fallback)
    edge = departures.slow_edge(base)
    if edge is None:
        return None, None, (None, None, None)
    base_total = base[-1][1]
    base_slow = base_total - dict(base).get(edge, base_total)
    found = departures.count_departure(
        histogram.intervals(key, edge), base_slow, base_total, window.start
    )
    if found is None:
        return None, edge, (_p99(base), None, None)
    first = _p99(histogram.buckets(key, [found.first]))
    worst = _p99(histogram.buckets(key, [found.worst]))
    return found, edge, (_p99(base), first, worst)


def _pooled(histogram: _Histogram, keys: Sequence[tuple[str, ...]], start: float) -> list[Any]:
    summed: dict[float, float] = defaultdict(float)
    for key in keys:
        for edge, value in histogram.buckets(key, _baseline(sorted(histogram.cells[key]), start)):
            summed[edge] += value
    return sorted(summed.items())


def _errors(
    series: Sequence[Series], by: Sequence[str]
) -> dict[tuple[str, ...], dict[float, float]]:
    out: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    for one in series:
        key = tuple(one.labels.get(name, "") for name in by)
        for at, value in one.points:
            if not math.isnan(value):
                out[key][at] = value
    return out


def _error_departure(
    histogram: _Histogram,
    errors: dict[float, float],
    key: tuple[str, ...],
    window: Window,
    fallback: tuple[float, float],
) -> Departure | None:
    intervals = [
        Counts(c.at, c.events, min(c.events, errors.get(c.at, 0.0)))
        for c in histogram.intervals(key, None)
    ]
    before = [c for c in intervals if c.at <= window.start]
    bad, events = sum(c.bad for c in before), sum(c.events for c in before)
    if events < MIN_BASELINE:
        bad, events = fallback
    return departures.count_departure(intervals, bad, events, window.start)


def _histogram_signal(
    prometheus: Prometheus,
    window: Window,
    family: Family,
    by: tuple[str, ...],
    name: str,
    errors_too: bool,
    group: tuple[str, ...] = (),
    edges: dict[tuple[str, ...], float] | None = None,
) -> list[Movement]:
    """Latency (and, with ``errors_too``, the error ratio) of one histogram family by ``by``.
    ``group``: the labels a key borrows its band from when its own baseline is too thin."""
    bucket_query = window.increase(Selector(family.bucket), [*by, "le"])
    histogram = _Histogram(by)
    histogram.add(window.read(prometheus, bucket_query))
    error_query = window.increase(Selector(family.count).matching(ERROR), list(by))
    errors = _errors(window.read(prometheus, error_query), by) if errors_too else {}
    keys = sorted(histogram.cells)
    positions = [by.index(g) for g in group]
    service_base = _pooled(histogram, keys, window.start)
    found: list[Movement] = []
    for key in keys:
        siblings = [k for k in keys if all(k[p] == key[p] for p in positions)]
        group_base = _pooled(histogram, siblings, window.start) if group else service_base
        fallback = group_base if group_base and group_base[-1][1] >= MIN_BASELINE else service_base
        labels = dict(zip(by, key, strict=True))
        slow, edge, p99 = _latency(histogram, key, window, fallback)
        if edges is not None and edge is not None:
            edges[key] = edge
        if slow is not None:
            query = promql.histogram_quantile(
                0.99, Selector(family.bucket).matching(*window.scope), int(window.step), list(by)
            )
            found.append(
                Movement(
                    _named(name, "latency"), family.name, labels, "latency", slow, query, edge, p99
                )
            )
        if errors_too:
            pool_bad = sum(
                v for k in siblings for at, v in errors.get(k, {}).items() if at <= window.start
            )
            pool_events = group_base[-1][1] if group_base else 0.0
            moved = _error_departure(
                histogram, errors.get(key, {}), key, window, (pool_bad, pool_events)
            )
            if moved is not None:
                query = promql.ratio(error_query, window.increase(Selector(family.count), list(by)))
                found.append(
                    Movement(_named(name, "errors"), family.name, labels, "errors", moved, query)
                )
    return found


def _named(name: str, kind: str) -> str:
    """``request latency``, ``outbound errors``; a wait or a lag is its own latency."""
    if kind == "latency" and name.endswith(("wait", "lag")):
        return name
    return f"{name} {kind}"


def symptoms(
    prometheus: Prometheus, window: Window
) -> tuple[list[Movement], dict[tuple[str, str], float]]:
    """Routes and tenants whose error ratio or latency departed, first departure first; and
    the pre-window p99 bucket edge of every (route, tenant)."""
    edges: dict[tuple[str, ...], float] = {}
    found = _histogram_signal(
        prometheus,
        window,
        catalogue.HTTP_SERVER_DURATION,
        (ROUTE, TENANT),
        "request",
        errors_too=True,
        group=(ROUTE,),
        edges=edges,
    )
    ordered = sorted(found, key=lambda m: (m.departure.first, -m.departure.first_value))
    return ordered, {(k[0], k[1]): v for k, v in edges.items()}


# --- saturation and dependencies ------------------------------------------------------------

_POOL = "db_client_connection_pool_name"
# (family, labels, name) of the histograms, (family, labels, name, floor, how) of the levels.
_HISTOGRAMS: tuple[tuple[Family, tuple[str, ...], str, bool], ...] = (
    (catalogue.EVENT_LOOP_LAG, ("instance",), "event-loop lag", False),
    (catalogue.POOL_WAIT, (_POOL,), "pool wait", False),
    (catalogue.EXECUTOR_QUEUE_WAIT, ("executor",), "executor queue wait", False),
    (catalogue.HTTP_CLIENT_DURATION, ("server_address",), "outbound", True),
)


def _levels(window: Window) -> list[tuple[Family, str, str, float]]:
    step = promql.duration(int(window.step))
    timeouts = window.increase(Selector(catalogue.POOL_TIMEOUTS.sample), [_POOL])
    pending = Selector(catalogue.POOL_PENDING.name).matching(*window.scope)
    pending_max = promql.aggregate("max", promql.over_time("max", pending, step), [_POOL])
    throttled = Selector(catalogue.CGROUP_CPU_THROTTLED_SECONDS.sample).matching(*window.scope)
    throttling = promql.aggregate("max", promql.rate(throttled, step), ["instance"])
    return [
        (catalogue.POOL_TIMEOUTS, timeouts, "pool timeouts", 0.5),
        (catalogue.POOL_PENDING, pending_max, "requests pending on a pool", 0.5),
        (catalogue.CGROUP_CPU_THROTTLED_SECONDS, throttling, "CPU throttling (s/s)", 0.01),
    ]


def saturation(prometheus: Prometheus, window: Window) -> list[Movement]:
    """Saturation and dependency signals that departed, first departure first."""
    found: list[Movement] = []
    for family, by, name, errors_too in _HISTOGRAMS:
        found += _histogram_signal(prometheus, window, family, by, name, errors_too)
    for family, expr, name, floor in _levels(window):
        for series in window.read(prometheus, expr):
            moved = departures.level_departure(series.points, window.start, floor)
            if moved is not None:
                found.append(Movement(name, family.name, dict(series.labels), "level", moved, expr))
    return sorted(found, key=lambda m: m.departure.first)
