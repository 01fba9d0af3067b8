"""``obskit slo runbooks``: one Markdown page per objective, the one its ``runbook_url`` names.

Sections follow the prometheus-operator runbooks: Meaning (what each tier's burn spends, in
words), Impact, Diagnosis (the queries to run first: the burn, RED by route and tenant, the
saturation signals, exemplars to kept traces, logs by correlation id), Mitigation (the
declaration's own levers, as a checklist) and Owner.
"""

from __future__ import annotations

from fractions import Fraction

from obskit.metrics import promql
from obskit.metrics.promql import Selector
from obskit.slo import _signals, rules, saturation
from obskit.slo.burn import DAY, text
from obskit.slo.indicators import BusinessSuccess, FunctionAvailability, Latency
from obskit.slo.objectives import Objective, ObjectiveSet

__all__ = ["render"]

USUAL_LEVERS = (
    "roll back the last deploy (see the deploy markers on the dashboard)",
    "turn off the feature flag that changed (flag variants are on the log lines)",
    "scale out if a saturation signal is high",
    "degrade: shed or queue the optional work",
)


def _hours(seconds: Fraction) -> str:
    if seconds >= 2 * DAY:
        return f"{float(seconds / DAY):.3g} days"
    if seconds >= 2 * 3600:
        return f"{float(seconds / 3600):.3g} hours"
    return f"{float(seconds / 60):.3g} minutes"


def _meaning(objective: Objective) -> list[str]:
    days = objective.period // DAY
    lines = [
        f"Good events: {objective.indicator.describe()}. The objective is "
        f"{text(objective.target * 100)}% of them over a rolling {days} days, so the error "
        f"budget is {text(objective.budget * 100)}% of events.",
        "",
        "A burn rate of 1 spends the budget exactly over the period. The alerts:",
        "",
        "| tier | severity | fires at burn | which spends | within | still burning over |"
        " whole budget gone in |",
        "|---|---|---|---|---|---|---|",
    ]
    for tier in objective.tiers:
        factor = tier.factor(objective.period)
        gone = Fraction(objective.period) / factor
        lines.append(
            f"| {tier.name} | {tier.severity} | {text(factor)}x | "
            f"{text(tier.budget_share * 100)}% of the budget | {tier.long_window} | "
            f"{tier.short_window} | {_hours(gone)} |"
        )
    if objective.by_tenant:
        lines += ["", "It is checked for every tenant: the alert's `tenant_id` says which one."]
    if objective.min_events:
        lines += [
            "",
            f"No burn alert fires on fewer than {objective.min_events} events in its long window.",
        ]
    lines += [
        "",
        f"`{rules.ABSENT_ALERT}` means none of its series was seen for "
        f"{promql.duration(objective.absent_for)}: the burn cannot be measured at all.",
    ]
    return lines


def _red(objective: Objective) -> list[tuple[str, str]]:
    indicator = objective.indicator
    where = objective.where
    if isinstance(indicator, (FunctionAvailability, BusinessSuccess)) or (
        isinstance(indicator, Latency) and indicator.histogram != _signals.HTTP_DURATION.name
    ):
        total = objective.total().plus[0]
        by = ["tenant_id"] if objective.indicator.has_label("tenant_id") else []
        if isinstance(indicator, FunctionAvailability):
            by = ["function"]
        return [
            ("Rate", promql.sum_by(promql.rate(total, "5m"), by)),
            ("Bad events", promql.sum_by(objective.bad().rate("5m", by), ())),
        ]
    http = _signals.HTTP_DURATION
    count = Selector(http.count).where(**where)
    buckets = Selector(http.bucket).where(**where)
    by = ["http_route", "tenant_id"]
    errors = count.matching(promql.Matcher("error_type", "!=", ""))
    return [
        ("Requests a second by route and tenant", promql.sum_by(promql.rate(count, "5m"), by)),
        (
            "Error ratio by route and tenant",
            promql.ratio(
                promql.sum_by(promql.rate(errors, "5m"), by),
                promql.sum_by(promql.rate(count, "5m"), by),
            ),
        ),
        ("p99 latency by route and tenant", promql.histogram_quantile(0.99, buckets, "5m", by)),
        ("Errors by type", promql.sum_by(promql.rate(errors, "5m"), ["http_route", "error_type"])),
    ]


def _diagnosis(sets: ObjectiveSet, objective: Objective) -> list[str]:
    own = str(Selector(rules.ratio_name(300)).where(slo=objective.name))
    burn = f"{own} / {text(objective.budget)}"
    lines = [
        "Run these first (Prometheus or the dashboard):",
        "",
        "1. **The burn now**, by window (a value above the tier's factor is what paged):",
        "",
        f"   ```promql\n   {burn}\n   ```",
        "",
        "2. **RED** — where the bad events are:",
        "",
    ]
    for title, expr in _red(objective):
        lines += [f"   - {title}:", "", f"     ```promql\n     {expr}\n     ```", ""]
    lines += ["3. **Saturation** — is a resource short (a cause, not the page):", ""]
    for signal in saturation.SIGNALS:
        lines += [
            f"   - {signal.meaning} (high above {signal.threshold}):",
            "",
            f"     ```promql\n     {signal.expr(sets.common_where)}\n     ```",
            "",
        ]
    lines += [
        "4. **Exemplars to kept traces** — the latency panel's exemplars carry trace ids of "
        "traces the tail sampler kept (every error and slow trace is kept); open one to see "
        "which span the time or the error came from. From the API:",
        "",
        f"   `GET /api/v1/query_exemplars?query={_signals.HTTP_DURATION.bucket}`",
        "",
        "5. **Logs by correlation id** — every JSON log line carries `correlation_id`, "
        "`trace_id` and `tenant_id`; take the id from the trace (or the `x-request-id` of a "
        "failed request) and filter the logs on it, e.g. `jq 'select(.correlation_id==\"ID\")'`.",
    ]
    return lines


def render(sets: ObjectiveSet, objective: Objective) -> str:
    """The runbook of one objective, as Markdown."""
    levers = objective.mitigations or USUAL_LEVERS
    note = "" if objective.mitigations else " (none declared: the usual levers)"
    service = objective.service or sets.service or "the service"
    dashboard = rules.dashboard_link(sets, objective, rules.RuleOptions()).split("?")[0]
    lines = [
        f"# {objective.name}",
        "",
        f"Runbook of the SLO `{objective.name}` of {service}, owned by **{objective.owner}**. "
        "Written by `obskit slo runbooks` from the declaration; edit the declaration, not this.",
        "",
        "## Meaning",
        "",
        *_meaning(objective),
        "",
        "## Impact",
        "",
        f"Users see {'failures' if objective.indicator.kind != 'latency' else 'slow answers'}: "
        "the bad events are theirs. A page means the budget goes within hours or days at this "
        "rate; a ticket means it is being spent faster than it refills.",
        "",
        "## Diagnosis",
        "",
        *_diagnosis(sets, objective),
        "",
        "## Mitigation",
        "",
        f"Stop the burn first, find the cause later{note}:",
        "",
        *(f"- [ ] {lever}" for lever in levers),
        "",
        "Then watch the 5-minute burn fall below the factor: the page resolves by itself.",
        "",
        "## Owner",
        "",
        f"**{objective.owner}**: pages and tickets of `{objective.name}` route to them.",
    ]
    if dashboard:
        lines += ["", f"Dashboard: <{dashboard}>"]
    return "\n".join(lines) + "\n"
