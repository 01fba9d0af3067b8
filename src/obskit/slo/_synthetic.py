"""Synthetic counters for the promtool tests: series shaped like obskit's own, per indicator.

:class:`World` builds, for one scenario, the input series a stream of good or bad events of an
objective increases (an HTTP request also counts in its histogram's buckets, a ``@red`` call in
its calls counter and its histogram), and says how many bad and total events a minute each
objective of the set sees in them — so a test can list every alert its input fires, also the
alerts of other objectives that read the same series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from obskit.metrics import promql
from obskit.metrics.promql import Matcher, Selector
from obskit.slo import _signals
from obskit.slo.indicators import (
    BusinessSuccess,
    Counters,
    FunctionAvailability,
    HttpAvailability,
    Latency,
)
from obskit.slo.objectives import Objective, ObjectiveSet, SpecError

__all__ = ["Series", "World", "selects"]


class Series:
    """A synthetic counter: labels and its increase per minute (piecewise)."""

    def __init__(self, metric: str, labels: Mapping[str, str]) -> None:
        self.metric = metric
        self.labels = dict(labels)
        self.steps: list[tuple[float, int]] = []

    def add(self, per_minute: float, minutes: int) -> Series:
        """Increase by ``per_minute`` for ``minutes`` samples."""
        self.steps.append((per_minute, minutes))
        return self

    def name(self) -> str:
        """The series as promtool's ``series:`` writes it."""
        inner = ",".join(f"{k}={promql.quote(v)}" for k, v in sorted(self.labels.items()))
        return f"{self.metric}{{{inner}}}" if inner else self.metric

    def values(self) -> str:
        """promtool's expanding notation: ``0+15x30 450x40``."""
        parts, value, first = [], 0.0, True
        for rate, count in self.steps:
            start = value if first else value + rate
            if rate == 0:
                parts.append(f"{_num(start)}x{count if first else count - 1}")
            else:
                parts.append(f"{_num(start)}+{_num(rate)}x{count if first else count - 1}")
            value = start + rate * (count if first else count - 1)
            first = False
        return " ".join(parts)

    def rate_at(self, minute: int) -> float:
        """Increase per minute around ``minute`` (for the steady scenarios: the first step)."""
        elapsed = 0
        for rate, count in self.steps:
            elapsed += count
            if minute < elapsed:
                return rate
        return 0.0


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def _value_for(matcher: Matcher, want: bool) -> str | None:
    """A label value that matches (``want``) or does not match the matcher."""
    if matcher.op in ("=", "!=") and (matcher.op == "=") == want:
        return matcher.value
    candidates = ["", "200", "500", "ok", "error", "x"]
    if matcher.op in ("=~", "!~"):
        candidates = [*matcher.value.split("|"), *candidates]
    for candidate in candidates:
        if _matches(matcher, {matcher.label: candidate}) == want:
            return candidate
    return matcher.value + "-other" if not want and matcher.op == "=" else None


def _matches(matcher: Matcher, labels: Mapping[str, str]) -> bool:
    value = labels.get(matcher.label, "")
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    hit = re.fullmatch(matcher.value, value) is not None
    return hit if matcher.op == "=~" else not hit


def selects(selector: Selector, series: Series) -> bool:
    """Whether ``selector`` selects ``series``."""
    return selector.metric == series.metric and all(
        _matches(m, series.labels) for m in selector.matchers
    )


def _labels(selector: Selector, base: Mapping[str, str] | None = None) -> dict[str, str]:
    labels = dict(base or {})
    for matcher in selector.matchers:
        if _matches(matcher, labels) and matcher.label in labels:
            continue
        value = _value_for(matcher, True)
        if value is None:
            raise SpecError(f"cannot make a test series that {selector} selects")
        labels[matcher.label] = value
    return {k: v for k, v in labels.items() if v != ""}


Counted = list[tuple[Series, float]]  # series, and how much one event increases it


class World:
    """The synthetic series of one scenario, built from each indicator's own label shape."""

    def __init__(self, sets: ObjectiveSet) -> None:
        self.series: list[Series] = []
        self.edges: dict[str, set[float]] = {}
        for objective in sets.objectives:
            if isinstance(objective.indicator, Latency):
                histogram = objective.indicator.histogram
                self.edges.setdefault(histogram, set()).add(objective.indicator.threshold)

    def _histogram(self, name: str, labels: dict[str, str], fast: bool) -> Counted:
        labels = {k: v for k, v in labels.items() if v != ""}
        out: Counted = [(Series(name + "_count", labels), 1.0)]
        for edge in sorted(self.edges.get(name, ())):
            bucket = Series(name + "_bucket", {**labels, "le": promql.le(edge)})
            out.append((bucket, 1.0 if fast else 0.0))
        out.append((Series(name + "_bucket", {**labels, "le": "+Inf"}), 1.0))
        return out

    def events(self, objective: Objective, good: bool, tenant: str) -> Counted:
        """Series that one good (or bad) event of ``objective`` increases, and by how much."""
        where = dict(objective.where)
        if tenant:
            where[_signals.TENANT_LABEL] = tenant
        indicator = objective.indicator
        if isinstance(indicator, HttpAvailability):
            labels = {
                **where,
                "http_request_method": (indicator.methods or ("GET",))[0].upper(),
                "http_route": (indicator.routes or ("/",))[0],
                "http_response_status_code": "200" if good else "500",
                "error_type": "" if good else "500",
            }
            return self._histogram(_signals.HTTP_DURATION.name, labels, True)
        if isinstance(indicator, FunctionAvailability):
            labels = {
                **where,
                "function": indicator.functions[0],
                "module": (indicator.modules or ("app",))[0],
                "result": "ok" if good else "error",
                "error_type": "" if good else "Error",
            }
            calls = Series(_signals.FUNCTION_CALLS.sample, {k: v for k, v in labels.items() if v})
            return [(calls, 1.0), *self._histogram(_signals.FUNCTION_DURATION.name, labels, True)]
        if isinstance(indicator, Latency):
            base = _labels(Selector(indicator.histogram + "_count", indicator.matchers), where)
            if indicator.histogram == _signals.HTTP_DURATION.name:
                base.setdefault("http_request_method", "GET")
                base.setdefault("http_response_status_code", "200")
            if indicator.histogram == _signals.FUNCTION_DURATION.name:
                base.setdefault("result", "ok")
            return self._histogram(indicator.histogram, base, good)
        if isinstance(indicator, BusinessSuccess):
            labels = {
                **where,
                "event": indicator.event,
                "outcome": "success" if good else "failure",
            }
            return [(Series(_signals.BUSINESS_EVENTS.sample, labels), 1.0)]
        assert isinstance(indicator, Counters)
        return [(s, 1.0) for s in self._counter_pair(objective, indicator, good, where)]

    def _counter_pair(
        self, objective: Objective, indicator: Counters, good: bool, where: dict[str, str]
    ) -> list[Series]:
        total = objective.total().plus[0]
        pair = (
            objective.bad().plus[-1]
            if indicator.bad_series is not None
            else (objective.bad().minus[0])
        )
        hits_pair = good == (indicator.good_series is not None)
        if pair.metric != total.metric:
            out = [Series(total.metric, _labels(total, where))]
            if hits_pair:
                out.append(Series(pair.metric, _labels(pair, where)))
            return out
        labels = _labels(total, where)
        if hits_pair:
            labels = _labels(pair, labels)
        else:
            for matcher in pair.matchers:
                if _matches(matcher, labels) and not any(
                    m.label == matcher.label for m in total.matchers
                ):
                    value = _value_for(matcher, False)
                    if value is None:
                        raise SpecError(f"{objective.name}: cannot make a series outside {pair}")
                    labels[matcher.label] = value
                    break
            else:
                if all(_matches(m, labels) for m in pair.matchers):
                    raise SpecError(f"{objective.name}: cannot make a series outside {pair}")
        return [Series(total.metric, {k: v for k, v in labels.items() if v != ""})]

    def stream(
        self, objective: Objective, good: bool, tenant: str, steps: list[tuple[float, int]]
    ) -> None:
        """Add a stream of events: ``steps`` of (events a minute, minutes)."""
        for series, weight in self.events(objective, good, tenant):
            existing = next((s for s in self.series if s.name() == series.name()), None)
            if existing is None:
                for rate, minutes in steps:
                    series.add(rate * weight, minutes)
                self.series.append(series)
            else:  # one series counts two streams (a good and a bad one): add them up
                existing.steps = [
                    (r + rate * weight, n)
                    for (r, n), (rate, _) in zip(existing.steps, steps, strict=True)
                ]

    def input_series(self) -> list[dict[str, str]]:
        """promtool's ``input_series`` (one unrelated series when there is none)."""
        if not self.series:
            return [{"series": "obskit_test_placeholder", "values": "0x1"}]
        return [{"series": s.name(), "values": s.values()} for s in self.series]

    def counts(self, objective: Objective, minute: int) -> dict[str, tuple[float, float]]:
        """(bad, total) events a minute of ``objective`` at ``minute``, by tenant ("" for all)."""
        out: dict[str, tuple[float, float]] = {}
        total, bad = objective.total(), objective.bad()
        for series in self.series:
            if not any(selects(s, series) for s in total.selectors + bad.selectors):
                continue
            key = series.labels.get(_signals.TENANT_LABEL, "") if objective.by_tenant else ""
            rate = series.rate_at(minute)
            b, t = out.get(key, (0.0, 0.0))
            t += rate if any(selects(s, series) for s in total.plus) else 0.0
            b += rate if any(selects(s, series) for s in bad.plus) else 0.0
            b -= rate if any(selects(s, series) for s in bad.minus) else 0.0
            out[key] = (b, t)
        return out
