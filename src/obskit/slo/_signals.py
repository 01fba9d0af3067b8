"""The metric families SLO rules read: names, labels and histogram bucket edges.

One place for the SLO package to learn what obskit exposes; every other module of ``slo/``
imports names from here, never spells them. Until the metric catalogue
(``obskit.metrics.catalogue``) lands, the names are written here and a test checks them
against the modules that create the families (importing those would pull the runtime into a
command that only writes files); then this module reads the catalogue.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "BUSINESS_EVENTS",
    "CGROUP_PERIODS",
    "CGROUP_THROTTLED",
    "EVENT_LOOP_LAG",
    "EXECUTOR_WAIT",
    "FUNCTION_CALLS",
    "FUNCTION_DURATION",
    "HTTP_DURATION",
    "POOL_PENDING",
    "POOL_WAIT",
    "TENANT_LABEL",
    "Family",
    "histogram_edges",
]

# The guarded tenant label every per-tenant family carries (DESIGN: invariant 6).
TENANT_LABEL = "tenant_id"


@dataclasses.dataclass(frozen=True)
class Family:
    """What a rule needs to know of a family: its query names, labels and bucket edges."""

    name: str
    kind: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def sample(self) -> str:
        """The series name of a counter (``_total``) or gauge."""
        return self.name + "_total" if self.kind == "counter" else self.name

    @property
    def bucket(self) -> str:
        """``<name>_bucket`` of a histogram."""
        return self.name + "_bucket"

    @property
    def count(self) -> str:
        """``<name>_count`` of a histogram."""
        return self.name + "_count"


SEMCONV_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
FUNCTION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, *SEMCONV_DURATION_BUCKETS)

HTTP_DURATION = Family(
    "http_server_request_duration_seconds",
    "histogram",
    ("http_request_method", "http_route", "http_response_status_code", "error_type", TENANT_LABEL),
    SEMCONV_DURATION_BUCKETS,
)
FUNCTION_DURATION = Family(
    "obskit_function_duration_seconds",
    "histogram",
    ("function", "module", "result", "error_type"),
    FUNCTION_BUCKETS,
)
FUNCTION_CALLS = Family("obskit_function_calls", "counter", FUNCTION_DURATION.labels)
# Built by the canary work (issue 17.1): one counter, good = outcome "success".
BUSINESS_EVENTS = Family("obskit_business_events", "counter", ("event", "outcome", TENANT_LABEL))
CGROUP_PERIODS = Family("obskit_cgroup_cpu_periods", "counter")
CGROUP_THROTTLED = Family("obskit_cgroup_cpu_throttled_periods", "counter")
EVENT_LOOP_LAG = Family("obskit_event_loop_lag_seconds", "histogram", ("loop",))
POOL_WAIT = Family(
    "db_client_connection_wait_time_seconds", "histogram", ("db_client_connection_pool_name",)
)
POOL_PENDING = Family(
    "db_client_connection_pending_requests", "gauge", ("db_client_connection_pool_name",)
)
EXECUTOR_WAIT = Family("obskit_executor_queue_wait_seconds", "histogram", ("executor",))

_HISTOGRAMS = {f.name: f for f in (HTTP_DURATION, FUNCTION_DURATION, EVENT_LOOP_LAG, POOL_WAIT)}


def histogram_edges(name: str) -> tuple[float, ...] | None:
    """The bucket edges of obskit's histogram ``name`` (with or without ``_bucket``), or None
    when obskit does not expose it (its edges are then the user's to know)."""
    family = _HISTOGRAMS.get(name.removesuffix("_bucket").removesuffix("_count"))
    return family.buckets if family is not None and family.buckets else None
