"""What an objective counts: good, bad and total events, as counter series obskit exposes.

An indicator names the counters whose increase is the objective's *total* events and those
whose increase is its *bad* events (directly, or as total minus good). The rule writer turns
that into one recorded rate per window; nothing here knows about windows or alerts.

- :class:`HttpAvailability` — requests of some routes answered without a server error
  (``error_type`` set: a 5xx or an exception); 4xx count as bad only if you say so.
- :class:`FunctionAvailability` — calls of ``@obskit.red`` operations that did not raise.
- :class:`Latency` (:func:`http_latency`, :func:`function_latency`) — share of requests faster
  than a threshold, which must be an edge of the histogram's buckets.
- :class:`BusinessSuccess` — ``obskit_business_events_total{event, outcome}``: good is
  ``outcome="success"``, total is every outcome.
- :class:`Counters` — any counter pair: total with good or bad, as series selectors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

from obskit.metrics import promql
from obskit.metrics.promql import Matcher, Selector
from obskit.slo import _signals

__all__ = [
    "BusinessSuccess",
    "Counters",
    "Events",
    "FunctionAvailability",
    "HttpAvailability",
    "Indicator",
    "Latency",
    "function_latency",
    "http_latency",
]

Kind = Literal["availability", "latency", "business", "ratio"]


@dataclasses.dataclass(frozen=True)
class Events:
    """Events counted by counters: the sum of ``plus`` series minus the sum of ``minus``.

    Selectors in ``plus`` select disjoint series (they are joined with ``or``)."""

    plus: tuple[Selector, ...]
    minus: tuple[Selector, ...] = ()

    def rate(self, window: str, by: Sequence[str]) -> str:
        """Per-second rate of these events over ``window``, summed ``by`` the labels."""
        added = promql.sum_by(_union(self.plus, window), by)
        if not self.minus:
            return added
        # A good series may not exist yet (nothing good has happened): count it as zero.
        taken = promql.sum_by(_union(self.minus, window), by)
        return f"{added} - ({taken} or 0 * {added})"

    def where(self, matchers: Sequence[Matcher]) -> Events:
        """The same events restricted by extra matchers (``job="shop"``)."""
        return Events(
            tuple(s.matching(*matchers) for s in self.plus),
            tuple(s.matching(*matchers) for s in self.minus),
        )

    @property
    def selectors(self) -> tuple[Selector, ...]:
        """Every series selector these events read."""
        return self.plus + self.minus


def _union(selectors: tuple[Selector, ...], window: str) -> str:
    return " or ".join(promql.rate(s, window) for s in selectors)


class Indicator:
    """Base of indicators: what counts as total and bad, and what the runbook should say."""

    kind: Kind = "ratio"
    # The labels every counter of this indicator carries (None: not known, any is allowed).
    labels: tuple[str, ...] | None = None

    def total(self) -> Events:
        """The events the objective is about."""
        raise NotImplementedError

    def bad(self) -> Events:
        """The events that spend the error budget."""
        raise NotImplementedError

    def describe(self) -> str:
        """One sentence: what a good event is."""
        raise NotImplementedError

    def has_label(self, label: str) -> bool:
        """Whether every counter of this indicator carries ``label`` (or nobody knows)."""
        return self.labels is None or label in self.labels


def _routes(routes: Sequence[str], methods: Sequence[str]) -> tuple[Matcher, ...]:
    matchers: list[Matcher] = []
    if routes:
        matchers.append(promql.one_of("http_route", list(routes)))
    if methods:
        matchers.append(promql.one_of("http_request_method", [m.upper() for m in methods]))
    return tuple(matchers)


def _names(values: Sequence[str] | str, what: str) -> tuple[str, ...]:
    items = (values,) if isinstance(values, str) else tuple(values)
    if not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"{what} are non-empty strings, not {values!r}")
    return items


def _scope(routes: Sequence[str], methods: Sequence[str]) -> str:
    where = " ".join(m.upper() for m in methods) + " " if methods else ""
    if not routes:
        return f"{where}requests to any route".strip()
    return f"{where}requests to {', '.join(routes)}".strip()


@dataclasses.dataclass(frozen=True)
class HttpAvailability(Indicator):
    """HTTP requests answered without a server error (5xx or an exception).

    ``count_4xx``: client errors (4xx, including 499 for a client that went away) are bad too.
    """

    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    count_4xx: bool = False
    kind: Kind = dataclasses.field(default="availability", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", _names(self.routes, "routes"))
        object.__setattr__(self, "methods", _names(self.methods, "methods"))

    @property
    def labels(self) -> tuple[str, ...]:  # type: ignore[override]
        return _signals.HTTP_DURATION.labels

    def _series(self) -> Selector:
        return Selector(_signals.HTTP_DURATION.count, _routes(self.routes, self.methods))

    def total(self) -> Events:
        return Events((self._series(),))

    def bad(self) -> Events:
        # obskit sets error_type on every 5xx and on an exception that broke a response.
        errors = self._series().matching(Matcher("error_type", "!=", ""))
        if not self.count_4xx:
            return Events((errors,))
        client = self._series().matching(
            Matcher("error_type", "=", ""), Matcher("http_response_status_code", "=~", "4..")
        )
        return Events((errors, client))

    def describe(self) -> str:
        bad = "a client or server error" if self.count_4xx else "a server error"
        return f"{_scope(self.routes, self.methods)} answered without {bad}"


@dataclasses.dataclass(frozen=True)
class FunctionAvailability(Indicator):
    """Calls of ``@obskit.red`` operations (by their ``name=``) that did not raise."""

    functions: tuple[str, ...]
    modules: tuple[str, ...] = ()
    kind: Kind = dataclasses.field(default="availability", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "functions", _names(self.functions, "functions"))
        object.__setattr__(self, "modules", _names(self.modules, "modules"))
        if not self.functions:
            raise ValueError("name at least one @obskit.red function")

    @property
    def labels(self) -> tuple[str, ...]:  # type: ignore[override]
        return _signals.FUNCTION_CALLS.labels

    def _series(self) -> Selector:
        matchers = [promql.one_of("function", list(self.functions))]
        if self.modules:
            matchers.append(promql.one_of("module", list(self.modules)))
        return Selector(_signals.FUNCTION_CALLS.sample, tuple(matchers))

    def total(self) -> Events:
        return Events((self._series(),))

    def bad(self) -> Events:
        return Events((self._series().where(result="error"),))

    def describe(self) -> str:
        return f"calls of {', '.join(self.functions)} that return without an exception"


@dataclasses.dataclass(frozen=True)
class Latency(Indicator):
    """Events of a histogram faster than ``threshold`` seconds (``le`` bucket / ``_count``).

    ``histogram`` is the family name (no suffix). When obskit exposes it, ``threshold`` must be
    one of its bucket edges; the error says which edges exist.
    """

    histogram: str
    threshold: float
    matchers: tuple[Matcher, ...] = ()
    scope: str = ""
    known_labels: tuple[str, ...] | None = None
    kind: Kind = dataclasses.field(default="latency", init=False)

    def __post_init__(self) -> None:
        name = self.histogram.removesuffix("_bucket").removesuffix("_count")
        object.__setattr__(self, "histogram", name)
        Selector(name)  # a valid metric name
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
            raise ValueError(f"a latency threshold is a number of seconds, not {self.threshold!r}")
        if not self.threshold > 0:
            raise ValueError(f"a latency threshold is positive, not {self.threshold}")
        edges = _signals.histogram_edges(name)
        if edges is not None and float(self.threshold) not in edges:
            shown = ", ".join(f"{e:g}" for e in edges)
            raise ValueError(
                f"{self.threshold:g} s is not a bucket edge of {name}; the edges are {shown} "
                "(a latency objective counts the requests in the bucket at its threshold)"
            )
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def labels(self) -> tuple[str, ...] | None:  # type: ignore[override]
        return self.known_labels

    def total(self) -> Events:
        return Events((Selector(self.histogram + "_count", self.matchers),))

    def good(self) -> Selector:
        """The bucket of requests at or below the threshold."""
        return Selector(self.histogram + "_bucket", self.matchers).where(
            le=promql.le(self.threshold)
        )

    def bad(self) -> Events:
        return Events(self.total().plus, (self.good(),))

    def describe(self) -> str:
        what = self.scope or f"events of {self.histogram}"
        return f"{what} that take at most {self.threshold:g} s"


def http_latency(
    threshold: float, routes: Sequence[str] = (), methods: Sequence[str] = ()
) -> Latency:
    """Requests to ``routes`` (all when empty) answered within ``threshold`` seconds."""
    routes, methods = _names(routes, "routes"), _names(methods, "methods")
    return Latency(
        _signals.HTTP_DURATION.name,
        threshold,
        _routes(routes, methods),
        scope=_scope(routes, methods),
        known_labels=_signals.HTTP_DURATION.labels,
    )


def function_latency(threshold: float, functions: Sequence[str]) -> Latency:
    """Calls of ``@obskit.red`` operations that finish within ``threshold`` seconds."""
    functions = _names(functions, "functions")
    if not functions:
        raise ValueError("name at least one @obskit.red function")
    return Latency(
        _signals.FUNCTION_DURATION.name,
        threshold,
        (promql.one_of("function", list(functions)),),
        scope=f"calls of {', '.join(functions)}",
        known_labels=_signals.FUNCTION_DURATION.labels,
    )


@dataclasses.dataclass(frozen=True)
class BusinessSuccess(Indicator):
    """Business events (``obskit_business_events_total``) of ``event`` that succeeded."""

    event: str
    kind: Kind = dataclasses.field(default="business", init=False)

    def __post_init__(self) -> None:
        _names((self.event,), "event names")

    @property
    def labels(self) -> tuple[str, ...]:  # type: ignore[override]
        return _signals.BUSINESS_EVENTS.labels

    def _series(self) -> Selector:
        return Selector(_signals.BUSINESS_EVENTS.sample).where(event=self.event)

    def total(self) -> Events:
        return Events((self._series(),))

    def bad(self) -> Events:
        return Events((self._series(),), (self._series().where(outcome="success"),))

    def describe(self) -> str:
        return f"{self.event} business events whose outcome is success"


def _selector(value: Selector | str, what: str) -> Selector:
    if isinstance(value, Selector):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} is a series selector, not {value!r}")
    return promql.parse_selector(value)


@dataclasses.dataclass(frozen=True)
class Counters(Indicator):
    """Any counter pair: ``total`` with ``good`` or ``bad`` (exactly one), as series
    selectors (``jobs_total{queue="mail"}``), each read with ``rate()``."""

    total_series: Selector
    good_series: Selector | None = None
    bad_series: Selector | None = None
    description: str = ""
    kind: Kind = dataclasses.field(default="ratio", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_series", _selector(self.total_series, "total"))
        if (self.good_series is None) == (self.bad_series is None):
            raise ValueError("a counter pair has total and exactly one of good or bad")
        for field in ("good_series", "bad_series"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _selector(value, field.removesuffix("_series")))

    @classmethod
    def of(
        cls,
        total: str,
        *,
        good: str | None = None,
        bad: str | None = None,
        description: str = "",
    ) -> Counters:
        """A counter pair from PromQL selector text."""
        return cls(
            _selector(total, "total"),
            None if good is None else _selector(good, "good"),
            None if bad is None else _selector(bad, "bad"),
            description,
        )

    def total(self) -> Events:
        return Events((self.total_series,))

    def bad(self) -> Events:
        if self.bad_series is not None:
            return Events((self.bad_series,))
        assert self.good_series is not None
        return Events((self.total_series,), (self.good_series,))

    def describe(self) -> str:
        if self.description:
            return self.description
        if self.good_series is not None:
            return f"events counted by {self.good_series} out of {self.total_series}"
        return f"events of {self.total_series} not counted by {self.bad_series}"


def restrict(events: Events, where: Mapping[str, str]) -> Events:
    """``events`` with ``label="value"`` matchers added to every selector."""
    return events.where([Matcher(k, "=", v) for k, v in where.items()]) if where else events
