"""obskit's short YAML form: the common case in a few lines per objective.

::

    apiVersion: obskit/v1
    kind: Objectives
    service: shop
    owner: payments                 # defaults for every objective below
    period: 30d
    where: {job: shop}
    runbook_base: https://runbooks.example.com/slo
    objectives:
      - name: checkout-availability
        availability: {routes: [/checkout]}
        target: 99.9%
        by_tenant: true
        mitigations: [roll back the last deploy]
      - name: checkout-latency
        latency: {routes: [/checkout], threshold: 0.25}
        target: 99%
      - name: checkout-success
        business: {event: checkout}
        target: 99.5%

Indicators: ``availability`` (``routes``/``methods``/``count_4xx``, or ``functions``/``modules``),
``latency`` (``threshold`` and ``routes``/``methods``, ``functions``, or ``histogram``+``where``),
``business`` (``event``), ``ratio`` (``total`` and ``good`` or ``bad`` series selectors).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from obskit.metrics import promql
from obskit.metrics.promql import Matcher
from obskit.slo._yamlread import At, guarded
from obskit.slo.burn import Tier, parse_duration, select_tiers
from obskit.slo.indicators import (
    BusinessSuccess,
    Counters,
    FunctionAvailability,
    HttpAvailability,
    Indicator,
    Latency,
    function_latency,
    http_latency,
)
from obskit.slo.objectives import Objective, ObjectiveSet

__all__ = ["API_VERSION", "KIND", "parse"]

API_VERSION = "obskit/v1"
KIND = "Objectives"
_DEFAULTS = ("owner", "period", "where", "by_tenant", "tiers", "min_events")
_TOP = ("apiVersion", "kind", "service", "runbook_base", "dashboard_url", "saturation",
        *_DEFAULTS, "objectives")  # fmt: skip
_INDICATORS = ("availability", "latency", "business", "ratio")
_OBJECTIVE = ("name", "target", *_INDICATORS, "description", "runbook", "mitigations",
              "absent_for", "service", *_DEFAULTS)  # fmt: skip


def _availability(at: At) -> Indicator:
    fields = at.fields(optional=("routes", "methods", "count_4xx", "functions", "modules"))
    if "functions" in fields:
        if {"routes", "methods", "count_4xx"} & fields.keys():
            raise at.error("either functions (and modules) or routes/methods/count_4xx, not both")
        modules = fields["modules"].texts() if "modules" in fields else ()
        functions = fields["functions"].texts()
        return guarded(at, lambda: FunctionAvailability(functions, modules))
    if "modules" in fields:
        raise fields["modules"].error("modules narrow functions: name the functions too")
    routes = fields["routes"].texts() if "routes" in fields else ()
    methods = fields["methods"].texts() if "methods" in fields else ()
    count_4xx = fields["count_4xx"].flag() if "count_4xx" in fields else False
    return guarded(at, lambda: HttpAvailability(routes, methods, count_4xx))


def _latency(at: At) -> Indicator:
    fields = at.fields(("threshold",), ("routes", "methods", "functions", "histogram", "where"))
    threshold = float(fields["threshold"].number())
    if "histogram" in fields:
        name = fields["histogram"].text()
        where = fields["where"].mapping_of_text() if "where" in fields else {}
        matchers = tuple(Matcher(k, "=", v) for k, v in where.items())
        return guarded(fields["threshold"], lambda: Latency(name, threshold, matchers))
    if "where" in fields:
        raise fields["where"].error("where narrows a histogram: name the histogram too")
    if "functions" in fields:
        functions = fields["functions"].texts()
        return guarded(fields["threshold"], lambda: function_latency(threshold, functions))
    routes = fields["routes"].texts() if "routes" in fields else ()
    methods = fields["methods"].texts() if "methods" in fields else ()
    return guarded(fields["threshold"], lambda: http_latency(threshold, routes, methods))


def _ratio(at: At) -> Indicator:
    fields = at.fields(("total",), ("good", "bad", "description"))
    parts = {}
    for key in ("total", "good", "bad"):
        if key in fields:
            parts[key] = guarded(fields[key], partial(promql.parse_selector, fields[key].text()))
    description = fields["description"].text() if "description" in fields else ""
    return guarded(
        at, lambda: Counters(parts["total"], parts.get("good"), parts.get("bad"), description)
    )


def _indicator(fields: dict[str, At], at: At) -> Indicator:
    given = [k for k in _INDICATORS if k in fields]
    if len(given) != 1:
        raise at.error(
            f"exactly one indicator: {', '.join(_INDICATORS)} (given: {given or 'none'})"
        )
    kind = given[0]
    if kind == "business":
        event = fields[kind].fields(("event",))["event"].text()
        return guarded(fields[kind], lambda: BusinessSuccess(event))
    return {"availability": _availability, "latency": _latency, "ratio": _ratio}[kind](fields[kind])


def tiers(at: At) -> tuple[Tier, ...]:
    """Tier names (``page``, ``ticket``, ``all``, ``page-1h``...) or tier mappings."""
    if isinstance(at.value, str):
        return guarded(at, lambda: select_tiers([at.value]))
    out: list[Tier] = []
    for item in at.items():
        if isinstance(item.value, str):
            out.extend(guarded(item, partial(select_tiers, [item.value])))
            continue
        f = item.fields(("name", "severity", "budget_share", "long", "short"), ("for",))
        severity: Any = f["severity"].text(allowed=("page", "ticket"))
        share = f["budget_share"].value
        hold = f["for"].text() if "for" in f else None
        build = partial(Tier.of, f["name"].text(), severity, share, f["long"].text(),
                        f["short"].text(), hold)  # fmt: skip
        out.append(guarded(item, build))
    return tuple(out)


def _options(fields: dict[str, At]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "owner" in fields:
        options["owner"] = fields["owner"].text()
    if "period" in fields:
        period = fields["period"]
        options["period"] = period.value if isinstance(period.value, int) else period.text()
    if "where" in fields:
        options["where"] = fields["where"].mapping_of_text()
    if "by_tenant" in fields:
        options["by_tenant"] = fields["by_tenant"].flag()
    if "tiers" in fields:
        options["tiers"] = tiers(fields["tiers"])
    if "min_events" in fields:
        options["min_events"] = fields["min_events"].whole()
    return options


def _objective(at: At, defaults: dict[str, Any], service: str) -> Objective:
    fields = at.fields(("name", "target"), _OBJECTIVE[2:])
    indicator = _indicator(fields, at)
    options = {**defaults, **_options(fields)}
    if "owner" not in options:
        raise at.error("missing owner (here or at the top): the team its alerts route to")
    target = fields["target"]
    if isinstance(target.value, str):
        options["target"] = target.text()
    else:
        options["target"] = target.number()
    for key in ("description", "runbook"):
        if key in fields:
            options[key] = fields[key].text()
    if "mitigations" in fields:
        options["mitigations"] = fields["mitigations"].texts()
    if "absent_for" in fields:
        absent = fields["absent_for"]
        options["absent_for"] = guarded(absent, lambda: parse_duration(absent.text()))
    options["service"] = fields["service"].text() if "service" in fields else service
    name = fields["name"].text()
    return guarded(at, lambda: Objective(name=name, indicator=indicator, **options))


def parse(root: At) -> ObjectiveSet:
    """The ObjectiveSet one short-form document declares."""
    fields = root.fields(("apiVersion", "kind", "objectives"), _TOP)
    fields["apiVersion"].text(allowed=(API_VERSION,))
    fields["kind"].text(allowed=(KIND,))
    service = fields["service"].text() if "service" in fields else ""
    defaults = _options(fields)
    objectives = tuple(_objective(item, defaults, service) for item in fields["objectives"].items())
    if not objectives:
        raise fields["objectives"].error("declare at least one objective")
    extra: dict[str, Any] = {}
    for key in ("runbook_base", "dashboard_url"):
        if key in fields:
            extra[key] = fields[key].text()
    if "saturation" in fields:
        extra["saturation"] = fields["saturation"].flag()
    if "owner" in defaults:
        extra["owner"] = defaults["owner"]
    return guarded(root, lambda: ObjectiveSet(objectives, service=service, **extra))
