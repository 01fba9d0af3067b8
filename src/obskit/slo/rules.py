"""``obskit slo rules``: the Prometheus rule file of a set of objectives.

Per objective, four groups. Raw counters are read once, over five minutes; every longer window
is an average of recorded series, which is what keeps a per-tenant breakdown cheap:

- ``slo:<name>:rates`` (the evaluation interval): ``slo:sli_total:rate5m`` and
  ``slo:sli_bad:rate5m`` from the raw counters (by tenant when broken down), the 5-minute ratio;
- ``slo:<name>:5m`` (every 5 minutes): a *tile*, the 5-minute rates copied once per 5 minutes,
  so that consecutive tiles partition time; windows below a day average 5-minute tiles;
- ``slo:<name>:1h`` (every hour): hourly tiles averaged from 5-minute ones; windows from a day
  up and the period itself average hourly tiles: 720 samples for 30 days, not 86,400;
- ``slo:<name>:alerts``: the multiwindow burn-rate alerts (``SLOBurn``) and the alert for a
  metric gone silent (``SLOMetricAbsent``).

A window's error ratio is Σbad / Σtotal over the window — both averaged, then divided — so the
period's SLI is volume-weighted, not a mean of ratios. Zero traffic records ratio 0, never NaN:
``bad / (total > 0) or 0 * total``; an objective without a tenant breakdown records 0 even when
no series exist yet (``or vector(0)``), so a quiet hour never leaves a gap in 30 days.

Range selectors of tiles end half a tile short of the window (``[3450s]`` for one hour): a
Prometheus 2 range includes its left edge, which would otherwise hold one tile too many.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from obskit._yaml import dump
from obskit.metrics import promql
from obskit.metrics.promql import Selector
from obskit.slo import saturation
from obskit.slo.burn import DAY, Tier, text
from obskit.slo.objectives import HOUR_TILE, TILE, Objective, ObjectiveSet

__all__ = [
    "ABSENT_ALERT",
    "ALERT",
    "RuleOptions",
    "alert_rules",
    "groups",
    "rate_name",
    "ratio_name",
    "render",
]

ALERT = saturation.BURN_ALERT
ABSENT_ALERT = "SLOMetricAbsent"
SHORTEST = TILE  # the raw counters are read over 5 minutes


@dataclasses.dataclass(frozen=True)
class RuleOptions:
    """How the rules are evaluated.

    ``interval``: the rate and alert groups' evaluation interval (None: Prometheus' global one).
    ``dense``: evaluate the tile groups at that interval too — for a test server that lives
    minutes, not days (windows then average overlapping 5-minute rates: still volume-weighted).
    ``dashboard_uid``: the Grafana dashboard the alerts link to.
    """

    interval: str | None = None
    dense: bool = False
    dashboard_uid: str = ""


def rate_name(kind: str, window: int | str) -> str:
    """``slo:sli_<kind>:rate<window>`` (kind ``total`` or ``bad``)."""
    return f"slo:sli_{kind}:rate{window if isinstance(window, str) else promql.duration(window)}"


def ratio_name(window: int | str) -> str:
    """``slo:sli_error:ratio_rate<window>``: bad / total over the window."""
    return (
        f"slo:sli_error:ratio_rate{window if isinstance(window, str) else promql.duration(window)}"
    )


BUDGET_REMAINING = "slo:error_budget:remaining"


def _own(metric: str, objective: Objective) -> Selector:
    return Selector(metric).where(slo=objective.name)


def _level(window: int) -> str:
    """Which group computes a window: ``rates`` (5m), ``5m`` tiles or ``1h`` tiles."""
    if window == SHORTEST:
        return "rates"
    return "5m" if window < DAY else "1h"


def _record(name: str, expr: str, objective: Objective) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": {"slo": objective.name}}


def _ratio(objective: Objective, window: int) -> str:
    bad = _own(rate_name("bad", window), objective)
    total = _own(rate_name("total", window), objective)
    return f"{bad} / ({total} > 0) or 0 * {total}"


def _rates_group(objective: Objective) -> list[dict[str, Any]]:
    by = objective.group_by
    total = objective.total().rate(promql.duration(SHORTEST), by)
    if not by:
        total = f"{total} or vector(0)"
    # Bad is recorded wherever total is (a label set with no bad series yet is 0, not missing),
    # so that every window's averages of bad and total cover the same instants.
    aligned = promql.sum_by(str(_own(rate_name("total", SHORTEST), objective)), by)
    bad = f"{objective.bad().rate(promql.duration(SHORTEST), by)} or 0 * {aligned}"
    return [
        _record(rate_name("total", SHORTEST), total, objective),
        _record(rate_name("bad", SHORTEST), bad, objective),
        _record(ratio_name(SHORTEST), _ratio(objective, SHORTEST), objective),
    ]


def _tile_name(kind: str, width: int) -> str:
    return f"slo:sli_{kind}:tile{promql.duration(width)}"


def _tile_range(window: int, width: int) -> str:
    return promql.span(window - width // 2)


def _window_rules(objective: Objective, windows: list[int], width: int) -> list[dict[str, Any]]:
    rules = []
    for window in windows:
        for kind in ("total", "bad"):
            tiles = _own(_tile_name(kind, width), objective)
            expr = promql.over_time("avg", tiles, _tile_range(window, width))
            rules.append(_record(rate_name(kind, window), expr, objective))
        rules.append(_record(ratio_name(window), _ratio(objective, window), objective))
    return rules


def _five_minute_group(objective: Objective, windows: list[int]) -> list[dict[str, Any]]:
    rules = [
        _record(_tile_name(kind, TILE), str(_own(rate_name(kind, SHORTEST), objective)), objective)
        for kind in ("total", "bad")
    ]
    return rules + _window_rules(objective, windows, TILE)


def _hour_group(objective: Objective, windows: list[int]) -> list[dict[str, Any]]:
    rules = []
    for kind in ("total", "bad"):
        tiles = _own(_tile_name(kind, TILE), objective)
        hourly = promql.over_time("avg", tiles, _tile_range(HOUR_TILE, TILE))
        rules.append(_record(_tile_name(kind, HOUR_TILE), hourly, objective))
    rules += _window_rules(objective, windows, HOUR_TILE)
    period = _own(ratio_name(objective.period), objective)
    remaining = f"1 - {period} / {text(objective.budget)}"
    rules.append(_record(BUDGET_REMAINING, remaining, objective))
    return rules


def window_expr(objective: Objective, metric: str, window: int, dense: bool) -> str:
    """A recorded window series as an alert reads it: directly when it is recorded at the
    alert's interval, else its last value within two of its group's intervals (a series
    recorded every 5 minutes would otherwise drop out of an instant query's 5-minute lookback).
    """
    series = _own(metric, objective)
    if dense or _level(window) == "rates":
        return str(series)
    reach = 2 * (TILE if _level(window) == "5m" else HOUR_TILE)
    return promql.over_time("last", series, reach)


def _burn(objective: Objective, window: int, dense: bool) -> str:
    ratio = window_expr(objective, ratio_name(window), window, dense)
    return f"{ratio} / {text(objective.budget)}"


def summary(objective: Objective, tier: Tier, who: str, burn: str, remaining: str) -> str:
    """The alert's summary with its variable parts given (as templates, or rendered)."""
    days = objective.period // DAY
    return (
        f"{objective.name}{who} burns its error budget at {burn}x the rate {days}d allow, over "
        f"the last {tier.long_window} and {tier.short_window}; {remaining} of the {days}d "
        "budget is left."
    )


def _summary(objective: Objective, tier: Tier, tenant: bool) -> str:
    if tenant:
        series = f'printf "{BUDGET_REMAINING}{{slo=%q,tenant_id=%q}}" $labels.slo $labels.tenant_id'
    else:
        series = f'printf "{BUDGET_REMAINING}{{slo=%q}}" $labels.slo'
    remaining = (
        f"{{{{ with {series} | query }}}}{{{{ . | first | value | humanizePercentage }}}}"
        "{{ else }}an unknown share{{ end }}"
    )
    who = " (tenant {{ $labels.tenant_id }})" if tenant else ""
    return summary(objective, tier, who, '{{ $value | printf "%.1f" }}', remaining)


def description(objective: Objective, tier: Tier) -> str:
    factor = tier.factor(objective.period)
    share = text(tier.budget_share * 100)
    return (
        f"Good events: {objective.indicator.describe()}; target {text(objective.target * 100)}% "
        f"over {objective.period // DAY}d. This tier fires at a burn of {text(factor)}x, "
        f"which spends {share}% of the budget in {tier.long_window}."
    )


def alert_rules(objective: Objective, sets: ObjectiveSet, options: RuleOptions) -> list[Any]:
    """The ``SLOBurn`` alerts of every tier, and ``SLOMetricAbsent``."""
    rules: list[dict[str, Any]] = []
    runbook = sets.runbook_url(objective)
    tenant = bool(objective.group_by)
    for tier in objective.tiers:
        factor = text(tier.factor(objective.period))
        long_burn = promql.compare(_burn(objective, tier.long, options.dense), ">", factor)
        short_burn = promql.compare(_burn(objective, tier.short, options.dense), ">", factor)
        expr = f"(\n  {long_burn}\nand\n  {short_burn}\n)"
        if objective.min_events:
            rate = window_expr(objective, rate_name("total", tier.long), tier.long, options.dense)
            events = promql.compare(f"{rate} * {tier.long}", ">=", str(objective.min_events))
            expr += f"\nand\n  {events}"
        annotations = {
            "summary": _summary(objective, tier, tenant),
            "description": description(objective, tier),
            "runbook_url": runbook,
        }
        dashboard = dashboard_link(sets, objective, options)
        if dashboard:
            annotations["dashboard"] = dashboard
        rule: dict[str, Any] = {"alert": ALERT, "expr": expr + "\n"}
        if tier.hold:
            rule["for"] = promql.duration(tier.hold)
        rule["labels"] = labels(objective, tier)
        rule["annotations"] = annotations
        rules.append(rule)
    absent = " and ".join(promql.absent(s) for s in objective.total().plus)
    rules.append(
        {
            "alert": ABSENT_ALERT,
            "expr": absent,
            "for": promql.duration(objective.absent_for),
            "labels": {"slo": objective.name, "severity": "page", "owner": objective.owner},
            "annotations": {
                "summary": (
                    f"{objective.name}: none of its series ({objective.total().plus[0]}) has "
                    f"been seen for {promql.duration(objective.absent_for)}: its burn cannot be "
                    "measured (instrumentation, scraping or the service itself went silent)."
                ),
                "runbook_url": runbook,
            },
        }
    )
    return rules


def labels(objective: Objective, tier: Tier) -> dict[str, str]:
    """The labels of one tier's alert (the tenant comes from the series when broken down)."""
    return {
        "slo": objective.name,
        "severity": tier.severity,
        "long_window": tier.long_window,
        "short_window": tier.short_window,
        "owner": objective.owner,
    }


def dashboard_uid(sets: ObjectiveSet) -> str:
    """The uid of the set's dashboard: ``obskit-slo-<service>`` cut to Grafana's 40 chars."""
    return f"obskit-slo-{sets.service or 'objectives'}"[:40]


def dashboard_link(sets: ObjectiveSet, objective: Objective, options: RuleOptions) -> str:
    """The dashboard URL an alert links to (empty without a base URL); a per-tenant alert's
    link selects its tenant."""
    if not sets.dashboard_url:
        return ""
    uid = options.dashboard_uid or dashboard_uid(sets)
    link = f"{sets.dashboard_url.rstrip('/')}/d/{uid}"
    return link + "?var-tenant={{ $labels.tenant_id }}" if objective.by_tenant else link


def _windows(objective: Objective) -> tuple[list[int], list[int]]:
    wanted = set(objective.windows()) | {objective.period}
    five = sorted(w for w in wanted if _level(w) == "5m")
    hourly = sorted(w for w in wanted if _level(w) == "1h")
    return five, hourly


def groups(sets: ObjectiveSet, options: RuleOptions = RuleOptions()) -> list[dict[str, Any]]:
    """Every rule group of the set, in evaluation order."""
    out: list[dict[str, Any]] = []

    def group(name: str, rules: list[Any], interval: str | None) -> None:
        entry: dict[str, Any] = {"name": name}
        if interval:
            entry["interval"] = interval
        entry["rules"] = rules
        out.append(entry)

    fast = options.interval
    for objective in sets.objectives:
        five, hourly = _windows(objective)
        group(f"slo:{objective.name}:rates", _rates_group(objective), fast)
        group(
            f"slo:{objective.name}:5m",
            _five_minute_group(objective, five),
            fast if options.dense else "5m",
        )
        group(
            f"slo:{objective.name}:1h",
            _hour_group(objective, hourly),
            fast if options.dense else "1h",
        )
        group(f"slo:{objective.name}:alerts", alert_rules(objective, sets, options), fast)
    signals = saturation.rules(sets)
    if signals:
        group(f"slo:{sets.service or 'objectives'}:saturation", signals, fast)
    return out


def render(sets: ObjectiveSet, options: RuleOptions = RuleOptions()) -> str:
    """The rule file as YAML text."""
    header = (
        "Prometheus rules for SLOs, written by `obskit slo rules`; do not edit by hand.\n"
        f"Objectives: {', '.join(o.name for o in sets.objectives)}.\n"
        "Each objective reads its raw counters once over 5m; longer windows average recorded\n"
        "5-minute and hourly tiles. Alerts: SLOBurn (multiwindow burn rate), SLOMetricAbsent."
    )
    return dump({"groups": groups(sets, options)}, header=header)
