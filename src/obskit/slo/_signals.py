"""The metric families SLO rules read, from the metric catalogue.

One place for the SLO package to learn what obskit exposes: every other module of ``slo/``
takes names, labels and bucket edges from here, and this module takes them from
``obskit.metrics.catalogue`` (plain data: importing it loads no runtime).
"""

from __future__ import annotations

from obskit.metrics import catalogue

__all__ = [
    "BUSINESS_EVENTS",
    "CGROUP_PERIODS",
    "CGROUP_THROTTLED",
    "EVENT_LOOP_LAG",
    "FUNCTION_CALLS",
    "FUNCTION_DURATION",
    "HTTP_DURATION",
    "POOL_WAIT",
    "TENANT_LABEL",
    "histogram_edges",
]

# The guarded tenant label every per-tenant family carries (DESIGN: invariant 6).
TENANT_LABEL = "tenant_id"

HTTP_DURATION = catalogue.HTTP_SERVER_DURATION
FUNCTION_DURATION = catalogue.FUNCTION_DURATION
FUNCTION_CALLS = catalogue.FUNCTION_CALLS
BUSINESS_EVENTS = catalogue.BUSINESS_EVENTS
CGROUP_PERIODS = catalogue.CGROUP_CPU_PERIODS
CGROUP_THROTTLED = catalogue.CGROUP_CPU_THROTTLED_PERIODS
EVENT_LOOP_LAG = catalogue.EVENT_LOOP_LAG
POOL_WAIT = catalogue.POOL_WAIT


def histogram_edges(name: str) -> tuple[float, ...] | None:
    """The bucket edges of obskit's histogram ``name`` (with or without ``_bucket``), or None
    when obskit does not expose it (its edges are then the user's to know)."""
    stem = name.removesuffix("_bucket").removesuffix("_count")
    try:
        family = catalogue.family(stem)
    except KeyError:
        return None
    return family.buckets if family.type == "histogram" and family.buckets else None
