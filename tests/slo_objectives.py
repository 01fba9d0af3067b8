"""Python objectives for the SLO tests: what a user's module would declare."""

from __future__ import annotations

from obskit import slo

ORDERS = slo.ObjectiveSet(
    (
        slo.Objective(
            name="orders-success",
            indicator=slo.BusinessSuccess("order.placed"),
            target="99.5%",
            period="30d",
            owner="orders",
            by_tenant=True,
            mitigations=("turn the flag new-pricing off",),
        ),
        slo.Objective(
            name="jobs-delivered",
            indicator=slo.Counters.of(
                'jobs_total{queue="mail"}', good='jobs_done_total{queue="mail"}'
            ),
            target=0.99,
            period=28,
            owner="orders",
            tiers=("page",),
        ),
        slo.Objective(
            name="api-errors",
            indicator=slo.Counters.of(
                'api_requests_total{job="api"}', bad='api_requests_total{job="api",code=~"5.."}'
            ),
            target="99.9%",
            owner="platform",
            tiers=("page-1h",),
        ),
    ),
    service="orders",
    saturation=False,
)
