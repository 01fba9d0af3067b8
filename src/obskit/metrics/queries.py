"""The questions the docs ask of obskit's families, as PromQL: rate, errors, duration, in flight.

:mod:`obskit.metrics.promql` knows PromQL (quoting, windows, grouping); this module knows obskit's
families (:mod:`obskit.metrics.catalogue`): which series of a family counts events, which
matcher selects its failures, which labels it has. Each function takes a catalogue family
(the HTTP server duration by default), ``by`` labels to break the answer down (``("http_route",)``,
``("tenant_id",)``), ``where`` matchers to narrow it, and a ``window``; a label the family does not
carry is a ``ValueError`` naming the family's labels, so a typo fails where the query is built,
not as an empty graph::

    from obskit.metrics import catalogue, queries

    queries.rate(by=("http_route",))
    # sum by (http_route) (rate(http_server_request_duration_seconds_count[5m]))
    queries.error_ratio(by=("tenant_id",), where={"http_route": "/pay"})
    queries.quantile(0.99, catalogue.FUNCTION_DURATION, by=("function",))

The expressions are the ones ``docs/metrics.md`` shows (a test holds the two together) and are
checked against recorded series with ``promtool test rules``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from obskit.metrics import catalogue, promql
from obskit.metrics.catalogue import Family
from obskit.metrics.promql import Matcher, Selector

__all__ = [
    "TARGET_LABELS",
    "error_ratio",
    "errors_by_type",
    "in_flight",
    "quantile",
    "rate",
    "share_within",
]

# Labels Prometheus adds to every series it scrapes, and the one obskit adds per worker.
TARGET_LABELS = frozenset(("job", "instance", "pid"))
DEFAULT_WINDOW = "5m"
Where = Mapping[str, str] | Iterable[Matcher]


def _check_labels(family: Family, labels: Iterable[str]) -> None:
    if family.static_labels:
        return  # (any label a user passes to @obskit.red(labels=...) may be there)
    unknown = [name for name in labels if name not in family.labels and name not in TARGET_LABELS]
    if unknown:
        raise ValueError(
            f"{family.name} has no label {', '.join(unknown)}; its labels: "
            f"{', '.join(family.labels) or 'none'}"
        )


def _selector(family: Family, metric: str, where: Where, by: Sequence[str]) -> Selector:
    sel = promql.selector(metric, where)
    _check_labels(family, [m.label for m in sel.matchers])
    _check_labels(family, by)
    return sel


def _events(family: Family) -> str:
    """The series counting a family's events: a histogram's ``_count``, a counter's ``_total``."""
    if family.type == "histogram":
        return family.count
    if family.type == "counter":
        return family.sample
    raise ValueError(f"{family.name} is a {family.type}: it counts no events to rate")


def _failed(family: Family) -> Matcher:
    if "error_type" not in family.labels:
        raise ValueError(f"{family.name} has no error_type label: no error ratio to take")
    return Matcher("error_type", "!=", "")


def rate(
    family: Family = catalogue.HTTP_SERVER_DURATION,
    *,
    by: Sequence[str] = (),
    where: Where = (),
    window: float | str = DEFAULT_WINDOW,
) -> str:
    """Events per second (requests, calls), summed ``by`` the given labels."""
    sel = _selector(family, _events(family), where, by)
    return promql.sum_by(promql.rate(sel, window), by)


def error_ratio(
    family: Family = catalogue.HTTP_SERVER_DURATION,
    *,
    by: Sequence[str] = (),
    where: Where = (),
    window: float | str = DEFAULT_WINDOW,
) -> str:
    """The share of events that failed (``error_type`` not empty), ``by`` the given labels.

    A label set with traffic but no failure in the window has no numerator, so PromQL leaves it
    out of the answer (it is not 0): read a missing tenant as "no errors".
    """
    sel = _selector(family, _events(family), where, by)
    failed = promql.sum_by(promql.rate(sel.matching(_failed(family)), window), by)
    return f"{failed}\n  / {promql.sum_by(promql.rate(sel, window), by)}"


def errors_by_type(
    family: Family = catalogue.FUNCTION_CALLS,
    *,
    by: Sequence[str] = ("function",),
    where: Where = (),
    window: float | str = DEFAULT_WINDOW,
) -> str:
    """The share of events that failed with each ``error_type``, ``by`` the given labels."""
    sel = _selector(family, _events(family), where, by)
    failed = sel.matching(_failed(family))
    numerator = promql.sum_by(promql.rate(failed, window), [*by, "error_type"])
    denominator = promql.sum_by(promql.rate(sel, window), by)
    return f"{numerator}\n  / ignoring (error_type) group_left {denominator}"


def quantile(
    q: float,
    family: Family = catalogue.HTTP_SERVER_DURATION,
    *,
    by: Sequence[str] = (),
    where: Where = (),
    window: float | str = DEFAULT_WINDOW,
) -> str:
    """The ``q`` quantile of a histogram family over ``window``, from its buckets, ``by`` labels."""
    if family.type != "histogram":
        raise ValueError(f"{family.name} is a {family.type}, not a histogram")
    sel = _selector(family, family.bucket, where, by)
    return promql.histogram_quantile(q, sel, window, by)


def share_within(
    threshold: float,
    family: Family = catalogue.HTTP_SERVER_DURATION,
    *,
    by: Sequence[str] = (),
    where: Where = (),
    window: float | str = DEFAULT_WINDOW,
) -> str:
    """The share of events that took at most ``threshold`` (a bucket bound of the family).

    A latency objective's good ratio: only a bound the histogram has gives an exact answer, so
    any other threshold is a ``ValueError`` listing the bounds.
    """
    if family.type != "histogram":
        raise ValueError(f"{family.name} is a {family.type}, not a histogram")
    if float(threshold) not in family.buckets:
        bounds = ", ".join(catalogue.le(b) for b in family.buckets)
        raise ValueError(f"{threshold} is not a bucket bound of {family.name} ({bounds})")
    count = _selector(family, family.count, where, by)
    within = _selector(family, family.bucket, where, by).where(le=catalogue.le(threshold))
    good = promql.sum_by(promql.rate(within, window), by)
    return f"{good}\n  / {promql.sum_by(promql.rate(count, window), by)}"


def in_flight(
    family: Family = catalogue.HTTP_SERVER_ACTIVE, *, by: Sequence[str] = (), where: Where = ()
) -> str:
    """A gauge family summed ``by`` the given labels (requests, calls or streams in flight)."""
    if family.type != "gauge":
        raise ValueError(f"{family.name} is a {family.type}, not a gauge")
    return promql.sum_by(str(_selector(family, family.sample, where, by)), by)
