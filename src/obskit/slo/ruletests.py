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
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from obskit._yaml import dump
from obskit.metrics import promql
from obskit.metrics.promql import Selector
from obskit.slo import _signals, rules
from obskit.slo._synthetic import World
from obskit.slo.burn import Tier, text
from obskit.slo.objectives import Objective, ObjectiveSet

__all__ = ["render", "test_file"]

ABOVE = Fraction(150, 144)  # x15 of a 14.4 factor
BELOW = Fraction(130, 144)  # x13 of it
TRAFFIC = 1000  # events a minute
MINUTES = 75  # length of a steady input, in samples


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
