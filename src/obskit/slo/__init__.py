"""SLOs as code: objectives over what obskit measures, and the rules, promtool tests,
Alertmanager routes, runbooks and dashboard that watch them.

::

    from obskit import slo

    checkout = slo.Objective(
        name="checkout-availability",
        indicator=slo.HttpAvailability(routes=("/checkout",)),
        target="99.9%",
        period="30d",
        owner="payments",
        by_tenant=True,
        mitigations=("roll back the last deploy", "turn the flag new-checkout off"),
    )
    OBJECTIVES = slo.ObjectiveSet((checkout,), service="shop")

and ``obskit slo rules mymodule:OBJECTIVES -o slo-rules.yml``. The same objectives can be
declared in YAML (OpenSLO v1, or obskit's short form): :func:`load`.

Nothing here runs inside the service: ``import obskit`` does not import this package.
"""

from __future__ import annotations

from obskit.slo.burn import DEFAULT_TIERS, PAGE_TIERS, TICKET_TIERS, Tier
from obskit.slo.indicators import (
    BusinessSuccess,
    Counters,
    FunctionAvailability,
    HttpAvailability,
    Latency,
    function_latency,
    http_latency,
)
from obskit.slo.objectives import Objective, ObjectiveSet, SpecError
from obskit.slo.spec import load

__all__ = [
    "DEFAULT_TIERS",
    "PAGE_TIERS",
    "TICKET_TIERS",
    "BusinessSuccess",
    "Counters",
    "FunctionAvailability",
    "HttpAvailability",
    "Latency",
    "Objective",
    "ObjectiveSet",
    "SpecError",
    "Tier",
    "function_latency",
    "http_latency",
    "load",
]
