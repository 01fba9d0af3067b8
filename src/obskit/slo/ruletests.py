"""``obskit slo test``: ``promtool test rules`` files that prove each objective's alerts.

For every objective, from synthetic counters that look like obskit's own (one request a
minute per series would be too coarse: 1,000 a minute):

- a sustained burn above the fastest tier's factor (x15 for a 30-day page-1h tier) pages on
  that tier within 5 minutes, with the labels and annotations the rules promise;
- a burn below it (x13) does not page on that tier, now or an hour later;
- the alert resolves once errors stop;
- zero traffic never alerts, and records a ratio of 0 (not NaN) and a full budget;
- no series at all raises ``SLOMetricAbsent``;
- with ``min_events``, a burn on fewer events than that does not page;
- with ``by_tenant``, one burning tenant pages with its ``tenant_id`` while the aggregate is
  far below the factor.

Burn multiples scale with the tier's factor (x15/14.4 and x13/14.4 of it), so a 28-day or
7-day objective is held to the same margins. promtool evaluates every group at the test's
evaluation interval (1m), whatever its ``interval``; the windows then average overlapping
5-minute rates, which for the steady inputs here equals the tiled value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from obskit._yaml import dump
from obskit.metrics import promql
from obskit.metrics.promql import Matcher, Selector
from obskit.slo import _signals, rules
from obskit.slo.burn import Tier, text
from obskit.slo.indicators import (
    BusinessSuccess,
    Counters,
    FunctionAvailability,
    HttpAvailability,
    Latency,
)
from obskit.slo.objectives import Objective, ObjectiveSet, SpecError

__all__ = ["render", "test_file"]

ABOVE = Fraction(150, 144)  # x15 of a 14.4 factor
BELOW = Fraction(130, 144)  # x13 of it
TRAFFIC = 1000  # events a minute
MINUTES = 75  # length of a steady input, in samples


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


def fastest(objective: Objective) -> Tier:
    """The tier with the highest factor: the one a sudden burn must page on first."""
    tiers: tuple[Tier, ...] = objective.tiers
    return max(tiers, key=lambda t: (t.factor(objective.period), -t.long))


def _alerts(objective: Objective, tier: Tier | None, *, firing: bool = True, **extra: str) -> str:
    labels = {"alertname": rules.ALERT, "slo": objective.name, **extra}
    if tier is not None:
        labels.update(long_window=tier.long_window, short_window=tier.short_window)
    if firing:
        labels["alertstate"] = "firing"
    return str(Selector("ALERTS").where(**labels))


def _firing(objective: Objective, tier: Tier, tenant: str) -> dict[str, str]:
    labels = {
        "__name__": "ALERTS",
        "alertname": rules.ALERT,
        "alertstate": "firing",
        **rules.labels(objective, tier),
    }
    if objective.by_tenant:
        labels[_signals.TENANT_LABEL] = tenant
    return _sample(labels)


def _sample(labels: Mapping[str, str], value: int = 1) -> dict[str, Any]:
    metric = labels.get("__name__", "")
    rest = {k: v for k, v in labels.items() if k != "__name__"}
    inner = ",".join(f"{k}={promql.quote(v)}" for k, v in sorted(rest.items()))
    return {"labels": f"{metric}{{{inner}}}", "value": value}


def _traffic(objective: Objective, tier: Tier) -> float:
    """Events a minute that pass the minimum-events guard tenfold."""
    needed = objective.min_events * 10 / (tier.long / 60)
    return float(max(TRAFFIC, math.ceil(needed)))


def _m(minutes: int) -> str:
    return promql.duration(minutes * 60)


def _burning(
    world: World,
    objective: Objective,
    tenant: str,
    burn: Fraction,
    total: float,
    minutes: list[int],
) -> None:
    """A steady burn: ``total`` events a minute of which ``burn`` x budget are bad, in steps
    (``minutes``: the lengths of a burning step and of a following healthy one)."""
    bad = float(burn * objective.budget) * total
    steps = [(total - bad, minutes[0])] + ([(total, minutes[1])] if len(minutes) > 1 else [])
    world.stream(objective, True, tenant, steps)
    bad_steps = [(bad, minutes[0])] + ([(0.0, minutes[1])] if len(minutes) > 1 else [])
    world.stream(objective, False, tenant, bad_steps)


def _expected_at_five(sets: ObjectiveSet, world: World, minute: int) -> list[dict[str, Any]]:
    """Every SLOBurn alert firing at ``minute`` of a steady scenario, with its annotations."""
    expected = []
    for objective in sets.objectives:
        for tenant, (bad, total) in sorted(world.counts(objective, minute).items()):
            if total <= 0:
                continue
            burn = Fraction(bad / total) / objective.budget
            for tier in objective.tiers:
                if burn <= tier.factor(objective.period) or 60 + tier.hold > minute * 60 - 60:
                    continue
                if objective.min_events and total / 60 * tier.long < objective.min_events:
                    continue
                labels = rules.labels(objective, tier)
                who = ""
                if objective.by_tenant:
                    labels[_signals.TENANT_LABEL] = tenant
                    who = f" (tenant {tenant})"
                burn_float = bad / total / float(objective.budget)
                remaining = f"{(1 - burn_float) * 100:.4g}%"
                annotations = {
                    "summary": rules.summary(objective, tier, who, f"{burn_float:.1f}", remaining),
                    "description": rules.description(objective, tier),
                    "runbook_url": sets.runbook_url(objective),
                }
                link = rules.dashboard_link(sets, objective, rules.RuleOptions())
                if link:
                    annotations["dashboard"] = link.replace("{{ $labels.tenant_id }}", tenant)
                expected.append({"exp_labels": labels, "exp_annotations": annotations})
    return expected


def _cases(sets: ObjectiveSet, objective: Objective) -> list[dict[str, Any]]:
    tier = fastest(objective)
    factor = tier.factor(objective.period)
    traffic = _traffic(objective, tier)
    tenant = "tenant-a" if objective.by_tenant else ""
    short = tier.short // 60
    cases: list[dict[str, Any]] = []

    def case(name: str, world: World, **tests: Any) -> None:
        cases.append(
            {
                "name": f"{objective.name}: {name}",
                "interval": "1m",
                "input_series": world.input_series(),
                **tests,
            }
        )

    world = World(sets)
    _burning(world, objective, tenant, factor * ABOVE, traffic, [MINUTES])
    case(
        f"a burn of {text(factor * ABOVE)}x pages on {tier.name} within 5m",
        world,
        alert_rule_test=[
            {
                "eval_time": "5m",
                "alertname": rules.ALERT,
                "exp_alerts": _expected_at_five(sets, world, 5),
            }
        ],
        promql_expr_test=[
            {
                "expr": _alerts(objective, tier),
                "eval_time": "5m",
                "exp_samples": [_firing(objective, tier, tenant)],
            }
        ],
    )
    world = World(sets)
    _burning(world, objective, tenant, factor * BELOW, traffic, [MINUTES])
    case(
        f"a burn of {text(factor * BELOW)}x does not page on {tier.name}",
        world,
        promql_expr_test=[
            {"expr": _alerts(objective, tier, firing=False), "eval_time": t, "exp_samples": []}
            for t in ("5m", "10m")
        ],
    )
    world = World(sets)
    _burning(world, objective, tenant, factor * ABOVE, traffic, [10, 40])
    case(
        f"{tier.name} resolves once errors stop",
        world,
        promql_expr_test=[
            {
                "expr": _alerts(objective, tier),
                "eval_time": "10m",
                "exp_samples": [_firing(objective, tier, tenant)],
            },
            {
                "expr": _alerts(objective, tier, firing=False),
                "eval_time": _m(10 + short + 2),
                "exp_samples": [],
            },
        ],
    )
    world = World(sets)
    world.stream(objective, True, tenant, [(0.0, MINUTES)])
    world.stream(objective, False, tenant, [(0.0, MINUTES)])
    quiet = {"slo": objective.name, **({_signals.TENANT_LABEL: tenant} if tenant else {})}
    case(
        "zero traffic never alerts, records ratio 0 and a full budget",
        world,
        promql_expr_test=[
            *(
                {"expr": _alerts(objective, None, firing=False), "eval_time": t, "exp_samples": []}
                for t in ("5m", "10m")
            ),
            {
                "expr": str(Selector(rules.ratio_name(300)).where(slo=objective.name)),
                "eval_time": "10m",
                "exp_samples": [_sample({"__name__": rules.ratio_name(300), **quiet}, 0)],
            },
            {
                "expr": str(Selector(rules.BUDGET_REMAINING).where(slo=objective.name)),
                "eval_time": "10m",
                "exp_samples": [_sample({"__name__": rules.BUDGET_REMAINING, **quiet}, 1)],
            },
            {
                "expr": str(
                    Selector("ALERTS").where(alertname=rules.ABSENT_ALERT, slo=objective.name)
                ),
                "eval_time": "10m",
                "exp_samples": [],
            },
        ],
    )
    absent_after = objective.absent_for // 60 + 2
    case(
        "no series at all raises SLOMetricAbsent",
        World(sets),
        promql_expr_test=[
            {
                "expr": "count("
                + str(
                    Selector("ALERTS").where(
                        alertname=rules.ABSENT_ALERT, slo=objective.name, alertstate="firing"
                    )
                )
                + ")",
                "eval_time": _m(absent_after),
                "exp_samples": [{"labels": "{}", "value": 1}],
            }
        ],
    )
    if objective.min_events:
        world = World(sets)
        few = objective.min_events / 2 / (tier.long / 60)
        world.stream(objective, False, tenant, [(few, MINUTES)])
        case(
            f"fewer than {objective.min_events} events in {tier.long_window} never page",
            world,
            promql_expr_test=[
                {"expr": _alerts(objective, tier, firing=False), "eval_time": t, "exp_samples": []}
                for t in ("5m", "10m")
            ],
        )
    if objective.by_tenant:
        world = World(sets)
        _burning(world, objective, "tenant-a", factor * ABOVE, traffic, [MINUTES])
        _burning(world, objective, "tenant-b", Fraction(0), traffic * 100, [MINUTES])
        aggregate = (
            f"sum({Selector(rules.rate_name('bad', tier.long)).where(slo=objective.name)}) / "
            f"sum({Selector(rules.rate_name('total', tier.long)).where(slo=objective.name)}) / "
            f"{text(objective.budget)} < bool {text(factor)}"
        )
        case(
            "one burning tenant pages with its tenant_id while the aggregate does not burn",
            world,
            promql_expr_test=[
                {
                    "expr": _alerts(objective, tier),
                    "eval_time": "5m",
                    "exp_samples": [_firing(objective, tier, "tenant-a")],
                },
                {
                    "expr": aggregate,
                    "eval_time": "5m",
                    "exp_samples": [{"labels": "{}", "value": 1}],
                },
            ],
        )
    return cases


def test_file(sets: ObjectiveSet, rule_file: str) -> dict[str, Any]:
    """The promtool test file (as data) for ``rule_file`` holding ``rules.render(sets)``."""
    tests = [case for objective in sets.objectives for case in _cases(sets, objective)]
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        # promtool would evaluate the groups in no fixed order: tiles after rates, alerts last.
        "group_eval_order": [g["name"] for g in rules.groups(sets)],
        "tests": tests,
    }


def render(sets: ObjectiveSet, rule_file: str) -> str:
    """The promtool test file as YAML text."""
    header = (
        "promtool tests of the SLO rules, written by `obskit slo test`.\n"
        f"Run: promtool test rules {rule_file.rsplit('.', 1)[0]}.test.yml"
    )
    return dump(test_file(sets, rule_file), header=header)
