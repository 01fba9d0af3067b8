"""``obskit slo dashboard``: Grafana dashboard JSON that answers SLO questions.

Built with ``grafana-foundation-sdk`` (its Grafana 11.6 build, pinned in the ``slo`` extra).
A row per objective: the budget left, the burn by window against each tier's factor, the SLI
against its target (and, broken down, the burn by tenant). Then RED per route and tenant
(exemplars on: they link to kept traces), the saturation signals with their thresholds, and
deploy annotations — a new ``service_version`` in ``obskit_build_info``, and Grafana
annotations tagged ``deploy`` (what obskit's deploy markers write).
"""

from __future__ import annotations

import json
from typing import Any

from obskit.metrics import promql
from obskit.metrics.promql import Matcher, Selector
from obskit.slo import _signals, rules, saturation
from obskit.slo.burn import text
from obskit.slo.objectives import Objective, ObjectiveSet

__all__ = ["build", "render"]

TENANT = "$tenant"
# The budget left goes below zero once it is overspent; no panel shows less than this.
FLOOR = -1e9


def _imports() -> Any:
    # Imported on use: only this command needs the SDK (and Python 3.11).
    from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.models import common as enums
    from grafana_foundation_sdk.models import dashboard as models

    return common, dashboard, prometheus, stat, timeseries, models, enums


def _query(expr: str, legend: str, ref: str, *, exemplar: bool = False) -> Any:
    _, _, prometheus, _, _, _, _ = _imports()
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    return query.exemplar(True) if exemplar else query


def _thresholds(steps: list[tuple[float, str]]) -> Any:
    # Grafana writes a base step's -Infinity as null, which the pinned build's schema rejects:
    # each chain starts at a number below any value its panel shows instead.
    _, dashboard, _, _, _, models, _ = _imports()
    return (
        dashboard.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=v, color=c) for v, c in steps])
    )


def _timeseries(title: str, description: str, unit: str, width: int = 12) -> Any:
    common, _, _, _, timeseries, _, enums = _imports()
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(8)
        .legend(common.VizLegendOptions().show_legend(True).display_mode(
            enums.LegendDisplayMode.TABLE).placement(enums.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"]))
    )  # fmt: skip


def _own(metric: str, objective: Objective) -> Selector:
    selector = Selector(metric).where(slo=objective.name)
    if objective.by_tenant:
        selector = selector.matching(Matcher(_signals.TENANT_LABEL, "=~", TENANT))
    return selector


def _objective_row(objective: Objective) -> tuple[Any, list[Any]]:
    common, dashboard, _, stat, _, _, enums = _imports()
    budget = text(objective.budget)
    by = [_signals.TENANT_LABEL] if objective.by_tenant else []
    legend_tenant = "{{tenant_id}} " if objective.by_tenant else ""
    panels = []
    remaining = (
        promql.sum_by(str(_own(rules.BUDGET_REMAINING, objective)), by)
        if by
        else str(_own(rules.BUDGET_REMAINING, objective))
    )
    panels.append(
        stat.Panel()
        .title("Error budget left")
        .description(f"Share of the {objective.period // 86400}d error budget not yet spent.")
        .unit("percentunit")
        .span(6)
        .height(8)
        .with_target(_query(remaining, legend_tenant.strip() or objective.name, "A"))
        .thresholds(_thresholds([(FLOOR, "red"), (0.0, "orange"), (0.25, "green")]))
        .color_mode(enums.BigValueColorMode.BACKGROUND)
    )
    burn = _timeseries(
        "Burn rate by window",
        "Error ratio over each alert window divided by the budget; a tier pages (or files a "
        "ticket) when both its windows are above its factor.",
        "x",
        width=10,
    )
    ref = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for window in sorted({300, *objective.windows()}):
        expr = f"{_own(rules.ratio_name(window), objective)} / {budget}"
        burn = burn.with_target(
            _query(expr, f"{legend_tenant}{promql.duration(window)}", next(ref))
        )
    factors = sorted({float(t.factor(objective.period)) for t in objective.tiers})
    burn = burn.thresholds(
        _thresholds(
            [(0.0, "green"), *((f, "orange" if f < factors[-1] else "red") for f in factors)]
        )
    ).thresholds_style(
        common.GraphThresholdsStyleConfig().mode(enums.GraphThresholdsStyleMode.LINE)
    )
    panels.append(burn)
    sli = _timeseries(
        "SLI",
        f"Share of good events ({objective.indicator.describe()}), over 5m and over the whole "
        f"{objective.period // 86400}d period (volume-weighted), against the target.",
        "percentunit",
        width=8,
    )
    sli = sli.with_target(
        _query(f"1 - {_own(rules.ratio_name(300), objective)}", f"{legend_tenant}5m", "A")
    ).with_target(
        _query(
            f"1 - {_own(rules.ratio_name(objective.period), objective)}",
            f"{legend_tenant}{promql.duration(objective.period)}",
            "B",
        )
    )
    target = float(objective.target)
    sli = sli.thresholds(_thresholds([(0.0, "red"), (target, "green")])).thresholds_style(
        common.GraphThresholdsStyleConfig().mode(enums.GraphThresholdsStyleMode.LINE)
    )
    panels.append(sli)
    row = dashboard.Row(f"{objective.name}: {text(objective.target * 100)}% over "
                        f"{objective.period // 86400}d, owner {objective.owner}")  # fmt: skip
    return row, panels


def _red_panels(sets: ObjectiveSet) -> list[Any]:
    http = _signals.HTTP_DURATION
    tenant = Matcher(_signals.TENANT_LABEL, "=~", TENANT)
    count = Selector(http.count).where(**sets.common_where).matching(tenant)
    buckets = Selector(http.bucket).where(**sets.common_where).matching(tenant)
    errors = count.matching(Matcher("error_type", "!=", ""))
    by = ["http_route", _signals.TENANT_LABEL]
    legend = "{{http_route}} {{tenant_id}}"
    requests = promql.sum_by(promql.rate(count, "$__rate_interval"), by)
    return [
        _timeseries("Requests by route and tenant", "Requests a second.", "reqps", 8)
        .with_target(_query(requests, legend, "A")),
        _timeseries("Error ratio by route and tenant", "5xx and exceptions over all requests.",
                    "percentunit", 8)
        .with_target(_query(promql.ratio(promql.sum_by(promql.rate(errors, "$__rate_interval"), by),
                                         promql.sum_by(promql.rate(count, "$__rate_interval"), by)),
                            legend, "A")),
        _timeseries("p99 latency by route and tenant",
                    "From the duration histogram; exemplars link to kept traces.", "s", 8)
        .with_target(_query(promql.histogram_quantile(0.99, buckets, "$__rate_interval", by),
                            legend, "A", exemplar=True)),
    ]  # fmt: skip


def _saturation_panels(sets: ObjectiveSet) -> list[Any]:
    panels = []
    units = {"cpu_throttling": "percentunit", "event_loop_lag": "s", "pool_wait": "s"}
    for signal in saturation.SIGNALS:
        panel = _timeseries(
            signal.meaning[0].upper() + signal.meaning[1:],
            f"A ticket above {signal.threshold}; a page only while an objective burns.",
            units[signal.name],
            8,
        ).with_target(_query(signal.expr(sets.common_where), signal.name, "A"))
        threshold = float(signal.threshold)
        panels.append(panel.thresholds(_thresholds([(0.0, "green"), (threshold, "orange")])))
    return panels


def _annotations(sets: ObjectiveSet, datasource: str) -> list[Any]:
    _, dashboard, _, _, _, models, _ = _imports()
    build = Selector(catalog_build())
    if sets.service:
        build = build.where(service_name=sets.service)
    new_version = f"{build} unless {build} offset 5m"
    return [
        dashboard.AnnotationQuery()
        .name("Deploys (new service_version)")
        .datasource(models.DataSourceRef(type_val="prometheus", uid=datasource))
        .expr(new_version)
        .enable(True)
        .icon_color("blue"),
        dashboard.AnnotationQuery()
        .name("Deploy markers")
        .datasource(models.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .target(dashboard.AnnotationTarget().type("tags").tags(["deploy"]).match_any(True).limit(100))
        .enable(True)
        .icon_color("purple"),
    ]  # fmt: skip


def catalog_build() -> str:
    """The build-info series a deploy changes."""
    from obskit.metrics import catalogue

    return catalogue.BUILD_INFO.sample


def build(sets: ObjectiveSet, datasource: str = "prometheus") -> dict[str, Any]:
    """The dashboard as JSON-ready data."""
    _, dashboard, _, _, _, models, _ = _imports()
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    ref = models.DataSourceRef(type_val="prometheus", uid=datasource)
    tenant_source = f"label_values({rules.rate_name('total', 300)}, {_signals.TENANT_LABEL})"
    board = (
        dashboard.Dashboard(f"SLOs: {sets.service or 'objectives'}")
        .uid(rules.dashboard_uid(sets))
        .tags(["obskit", "slo"])
        .description("Written by `obskit slo dashboard` from the objectives; edit those instead.")
        .time("now-7d", "now")
        .refresh("1m")
        .with_variable(
            dashboard.QueryVariable("tenant")
            .label("tenant")
            .datasource(ref)
            .query(tenant_source)
            .include_all(True)
            .all_value(".*")
            .multi(True)
        )
        .annotations(_annotations(sets, datasource))
    )
    for objective in sets.objectives:
        row, panels = _objective_row(objective)
        board = board.with_row(row)
        for panel in panels:
            board = board.with_panel(panel.datasource(ref))
    board = board.with_row(dashboard.Row("RED per route and tenant"))
    for panel in _red_panels(sets):
        board = board.with_panel(panel.datasource(ref))
    board = board.with_row(dashboard.Row("Saturation (tickets; pages only with burn)"))
    for panel in _saturation_panels(sets):
        board = board.with_panel(panel.datasource(ref))
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render(sets: ObjectiveSet, datasource: str = "prometheus") -> str:
    """The dashboard as JSON text."""
    return json.dumps(build(sets, datasource), indent=2, sort_keys=True) + "\n"
