"""Detection: when each SLO tier started burning, when its alert was pending, fired, resolved.

The tiers are the ``SLOBurn`` rules ``obskit slo rules`` wrote, as the Prometheus being asked has
them loaded (``/api/v1/rules``): their labels (``slo``, ``severity``, ``long_window``,
``short_window``, ``owner``), ``for`` and ``runbook_url``. For each tier and each series it burns
for (a tenant, when the objective is broken down):

- **burning**: the first step at which the burn over the tier's short window —
  ``slo:sli_error:ratio_rate<short>{slo} / <error budget>`` — exceeded the tier's factor (the
  budget and factor are read from the rule's own expression);
- **pending**: ``ALERTS_FOR_STATE`` (the exact time both windows crossed the factor);
- **firing** and **resolved**: the first and last step ``ALERTS{alertstate="firing"}`` was seen.

The page is the first ``severity="page"`` tier that fired.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from obskit import _times as times
from obskit._prometheus import Prometheus
from obskit.incident.signals import Window
from obskit.metrics import promql
from obskit.metrics.promql import Selector

__all__ = ["ALERT", "Tier", "budget_spent", "tiers"]

ALERT = "SLOBurn"
BUDGET = "slo:error_budget:remaining"
# In the generated expression: `slo:sli_error:ratio_rate5m{slo="x"} / 0.01 > 14.4`.
_BURN = re.compile(
    r"(?P<series>slo:sli_error:ratio_rate(?P<window>[0-9a-z]+))\{[^}]*\}(?:\[[^\]]*\])?\)?\s*/\s*"
    r"(?P<budget>[0-9.]+)\s*>\s*(?P<factor>[0-9.]+)"
)
TIER_LABELS = ("slo", "severity", "long_window", "short_window")


@dataclasses.dataclass
class Tier:
    """One burn-rate tier of one objective (for one tenant when broken down)."""

    slo: str
    severity: str
    long_window: str
    short_window: str
    tenant: str
    owner: str
    hold: float
    runbook_url: str
    budget: float | None
    factor: float | None
    burning: float | None = None
    pending: float | None = None
    firing: float | None = None
    resolved: float | None = None
    # The query behind each of the four times, and the rule's own burn conditions.
    evidence: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """``checkout-availability page 1h/5m`` (and the tenant)."""
        who = f" tenant={self.tenant}" if self.tenant else ""
        return f"{self.slo} {self.severity} {self.long_window}/{self.short_window}{who}"

    @property
    def threshold(self) -> float | None:
        """The error ratio above which this tier burns (factor x budget)."""
        if self.budget is None or self.factor is None:
            return None
        return self.budget * self.factor

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {**dataclasses.asdict(self), "name": self.name, "threshold": self.threshold}


def _key(labels: Mapping[str, str]) -> tuple[str, ...]:
    return (*(labels.get(k, "") for k in TIER_LABELS), labels.get("tenant_id", ""))


def _first_last(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    seen = [at for at, value in points if not math.isnan(value)]
    return (seen[0], seen[-1]) if seen else None


def tiers(prometheus: Prometheus, window: Window, slos: Sequence[str] = ()) -> list[Tier]:
    """Every tier that burned, was pending or fired in the window (``slos``: only those)."""
    rules = [r for r in prometheus.alerting_rules() if r.get("name") == ALERT]
    if slos:
        rules = [r for r in rules if r.get("labels", {}).get("slo") in slos]
    # Alerts change state at evaluations: read them finer than the symptoms' step.
    step = max(1.0, min(window.step, (window.end - window.start) / 2000))
    alerts = Selector("ALERTS").where(alertname=ALERT)
    states = Selector("ALERTS_FOR_STATE").where(alertname=ALERT)
    found: dict[tuple[str, ...], Tier] = {}

    def tier(labels: dict[str, str], rule: dict[str, Any]) -> Tier:
        key = _key(labels)
        if key not in found:
            match = _BURN.search(rule.get("query", ""))
            burn_factors = _burns(rule.get("query", ""))
            found[key] = Tier(
                slo=labels.get("slo", ""),
                severity=labels.get("severity", ""),
                long_window=labels.get("long_window", ""),
                short_window=labels.get("short_window", ""),
                tenant=labels.get("tenant_id", ""),
                owner=labels.get("owner", rule.get("labels", {}).get("owner", "")),
                hold=float(rule.get("duration", 0) or 0),
                runbook_url=rule.get("annotations", {}).get("runbook_url", ""),
                budget=float(match.group("budget")) if match else None,
                factor=float(match.group("factor")) if match else None,
            )
            found[key].evidence["rule"] = " and ".join(burn_factors)
        return found[key]

    by_rule = {_key({**r.get("labels", {}), "tenant_id": ""})[:4]: r for r in rules}
    for rule in rules:
        labels = dict(rule.get("labels", {}))
        short = f"slo:sli_error:ratio_rate{labels.get('short_window', '')}"
        match = _BURN.search(rule.get("query", ""))
        if match is None:
            continue
        burn = promql.compare(
            f"{Selector(short).where(slo=labels.get('slo', ''))} / {match.group('budget')}",
            ">",
            match.group("factor"),
        )
        for series in prometheus.range(burn, window.start, window.end, step):
            seen = _first_last(series.points)
            if seen is not None:
                one = tier({**labels, **series.labels, "slo": labels.get("slo", "")}, rule)
                one.burning = seen[0]
                one.evidence["burning"] = f"{burn}: first true at {times.iso(seen[0])}"
    for series in prometheus.range(str(states), window.start, window.end, step):
        found_rule = by_rule.get(_key(series.labels)[:4])
        if found_rule is None:
            continue
        rule = found_rule
        values = [v for _, v in series.points if not math.isnan(v) and v > 0]
        if values:
            one = tier(dict(series.labels), rule)
            one.pending = values[0]
            active = f"{values[0]:.0f} ({times.iso(values[0])})"
            one.evidence["pending"] = f"{_labelled(states, series.labels)} = {active}"
    for series in prometheus.range(
        str(alerts.where(alertstate="firing")), window.start, window.end, step
    ):
        found_rule = by_rule.get(_key(series.labels)[:4])
        if found_rule is None:
            continue
        rule = found_rule
        seen = _first_last(series.points)
        if seen is not None:
            one = tier(dict(series.labels), rule)
            one.firing = seen[0]
            if seen[1] < window.end - 2 * step:
                one.resolved = seen[1] + step
            seen_text = f"seen from {times.iso(seen[0])} to {times.iso(seen[1])}"
            one.evidence["firing"] = f"{_labelled(alerts, series.labels)} {seen_text}"
    return sorted(
        found.values(),
        key=lambda t: min(x for x in (t.burning, t.pending, t.firing, math.inf) if x is not None),
    )


def _labelled(selector: Selector, labels: Mapping[str, str]) -> str:
    """``selector`` narrowed to the labels that name a tier's series."""
    keep = {k: labels[k] for k in (*TIER_LABELS, "tenant_id", "alertstate") if labels.get(k)}
    return str(selector.where(**{k: v for k, v in keep.items() if k != "alertname"}))


def _burns(query: str) -> list[str]:
    """The windows and factors in a rule's expression, as evidence text."""
    return [
        f"{m.group('series')} / {m.group('budget')} > {m.group('factor')}"
        for m in _BURN.finditer(query)
    ]


def budget_spent(
    prometheus: Prometheus, window: Window, slos: Sequence[str]
) -> list[dict[str, Any]]:
    """Per objective (and tenant): the error budget left at the window's start and end."""
    out: list[dict[str, Any]] = []
    for slo in slos:
        selector = Selector(BUDGET).where(slo=slo)
        # Recorded hourly (every evaluation with --dense): the last value within two hours.
        last = promql.over_time("last", selector, "2h")
        before = {
            tuple(sorted(s.labels.items())): s.points[0][1]
            for s in prometheus.query(last, window.start)
        }
        after = prometheus.query(last, window.end)
        for series in after:
            key = tuple(sorted(series.labels.items()))
            out.append(
                {
                    "slo": slo,
                    "tenant": series.labels.get("tenant_id", ""),
                    "remaining_before": before.get(key),
                    "remaining_after": series.points[0][1],
                    "query": last,
                }
            )
    return out
