"""What the judge compares: each check's counts, from which families, in which segments.

A :class:`Quantity` is one counter (or gauge) series set, read per arm and per interval, summed
by a grouping of labels: requests, errors, bucket counts. A :class:`CheckSpec` turns quantities
into one test: *events* out of an *exposure* (``ratio``: errors of requests, failed business
events of all, throttled CFS periods of all, pool timeouts of acquisitions), or the exposure
above bucket boundaries near a quantile (``tail``: p95/p99 of request durations, pool waits,
event-loop lag, executor queue waits, outbound latency), or a gauge shown for context
(``gauge``: pool pending requests, never tested — consecutive samples of a gauge are not
independent counts).

Names, labels and bucket layouts come from :mod:`obskit.metrics.catalogue`. ``gate`` checks
decide the verdict; ``cause`` checks (saturation, dependency pressure) explain it and, by the
design's rule that resource signals never page alone, fail a canary only when asked
(``saturation_gates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from obskit.metrics import catalogue
from obskit.metrics.catalogue import Family
from obskit.metrics.promql import Matcher

__all__ = [
    "DEFAULT_TOLERANCES",
    "CheckSpec",
    "Quantity",
    "Tolerances",
    "standard_checks",
]

Kind = Literal["ratio", "tail", "gauge"]
Role = Literal["gate", "cause"]

ROUTE = "http_route"
ERROR = Matcher("error_type", "!=", "")

# Allowed relative increase per metric (the tested null is "canary <= (1 + t) x baseline").
DEFAULT_TOLERANCES: dict[str, float] = {
    "errors": 0.2,
    "latency": 0.2,
    "business": 0.2,
    "saturation": 0.5,
    "dependency": 0.2,
}
Tolerances = dict[str, float]


@dataclass(frozen=True)
class Quantity:
    """A series set summed per grouping: ``sample{matchers}``, keyed by grouping + ``labels``."""

    name: str
    sample: str
    matchers: tuple[Matcher, ...] = ()
    labels: tuple[str, ...] = ()
    gauge: bool = False
    _hash: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        # A dict key in every interval of every arm: hash the fields once, not per lookup.
        fields = (self.name, self.sample, self.matchers, self.labels, self.gauge)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class CheckSpec:
    """One comparison, run in every segment of each of its ``groupings``."""

    metric: str
    kind: Kind
    exposure: Quantity
    tolerance: float
    groupings: tuple[tuple[str, ...], ...]
    events: Quantity | None = None
    buckets: Quantity | None = None
    quantile: float = 0.0
    role: Role = "gate"
    # Added to the exposure: acquisitions that timed out are not in the wait histogram's count.
    events_in_exposure: bool = False
    unit: str = "ratio"
    tolerance_key: str = field(default="errors", compare=False)

    def quantities(self) -> list[Quantity]:
        """The quantities this check reads."""
        return [q for q in (self.exposure, self.events, self.buckets) if q is not None]


def _counts(family: Family) -> Quantity:
    # Named by the series: every check counting one histogram's observations shares its reads.
    return Quantity(family.count, family.count)


def _buckets(family: Family) -> Quantity:
    return Quantity(family.bucket, family.bucket, labels=("le",))


def _tail(
    metric: str,
    family: Family,
    quantile: float,
    groupings: tuple[tuple[str, ...], ...],
    tolerance: float,
    role: Role,
    key: str,
) -> CheckSpec:
    return CheckSpec(
        metric,
        "tail",
        _counts(family),
        tolerance,
        groupings,
        buckets=_buckets(family),
        quantile=quantile,
        role=role,
        unit="seconds",
        tolerance_key=key,
    )


def standard_checks(
    *,
    by: Sequence[str] = (),
    requests: Family = catalogue.HTTP_SERVER_DURATION,
    quantiles: Sequence[float] = (0.95, 0.99),
    tolerances: Tolerances | None = None,
    resources: bool = True,
    saturation_gates: bool = False,
) -> list[CheckSpec]:
    """The checks of a canary: errors, latency quantiles, business failures, then causes.

    ``by`` adds segments per value of each label (``tenant_id``, ``feature_flag_variant``...);
    ``requests`` is the request-duration family the arms' requests are counted in;
    ``resources`` adds the per-process saturation and dependency checks (left out when both arms
    are one process, as for flag variants).
    """
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    for name, value in tol.items():
        if not 0 <= value:
            raise ValueError(f"tolerance for {name} must be >= 0, not {value}")
    per_request = ((), (ROUTE,), *((label,) for label in by))
    checks = [
        CheckSpec(
            "error rate",
            "ratio",
            _counts(requests),
            tol["errors"],
            per_request,
            events=Quantity(f"{requests.count}:errors", requests.count, (ERROR,)),
            tolerance_key="errors",
        ),
        *(
            _tail(
                f"latency p{q * 100:g}", requests, q, per_request, tol["latency"], "gate", "latency"
            )
            for q in quantiles
        ),
        CheckSpec(
            "business failure rate",
            "ratio",
            Quantity("business", catalogue.BUSINESS_EVENTS.sample),
            tol["business"],
            (("event",), *(("event", label) for label in by if label != "event")),
            events=Quantity(
                "business_failures",
                catalogue.BUSINESS_EVENTS.sample,
                (Matcher("outcome", "=", "failure"),),
            ),
            tolerance_key="business",
        ),
    ]
    if not resources:
        return checks
    cause: Role = "gate" if saturation_gates else "cause"
    sat, dep = tol["saturation"], tol["dependency"]
    pool = ("db_client_connection_pool_name",)
    server = ("server_address",)
    wait = catalogue.POOL_WAIT
    client = catalogue.HTTP_CLIENT_DURATION
    checks += [
        _tail(
            "event loop lag p99", catalogue.EVENT_LOOP_LAG, 0.99, ((),), sat, cause, "saturation"
        ),
        _tail("pool wait p99", wait, 0.99, (pool,), sat, cause, "saturation"),
        CheckSpec(
            "pool timeouts",
            "ratio",
            _counts(wait),
            sat,
            (pool,),
            events=Quantity("pool_timeouts", catalogue.POOL_TIMEOUTS.sample),
            role=cause,
            events_in_exposure=True,
            tolerance_key="saturation",
        ),
        CheckSpec(
            "cpu throttling",
            "ratio",
            Quantity("cpu_periods", catalogue.CGROUP_CPU_PERIODS.sample),
            sat,
            ((),),
            events=Quantity("cpu_throttled", catalogue.CGROUP_CPU_THROTTLED_PERIODS.sample),
            role=cause,
            tolerance_key="saturation",
        ),
        _tail(
            "executor queue wait p99",
            catalogue.EXECUTOR_QUEUE_WAIT,
            0.99,
            (("executor",),),
            sat,
            cause,
            "saturation",
        ),
        CheckSpec(
            "outbound error rate",
            "ratio",
            _counts(client),
            dep,
            (server,),
            events=Quantity(f"{client.count}:errors", client.count, (ERROR,)),
            role=cause,
            tolerance_key="dependency",
        ),
        _tail("outbound latency p99", client, 0.99, (server,), dep, cause, "dependency"),
        CheckSpec(
            "pool pending",
            "gauge",
            Quantity("pool_pending", catalogue.POOL_PENDING.sample, gauge=True),
            0.0,
            (pool,),
            role="cause",
            tolerance_key="saturation",
        ),
    ]
    return checks


def needed(checks: Sequence[CheckSpec]) -> list[tuple[Quantity, tuple[str, ...]]]:
    """Every (quantity, grouping) the checks read, each once, in a stable order."""
    seen: dict[tuple[Quantity, tuple[str, ...]], None] = {}
    for check in checks:
        for grouping in check.groupings:
            for quantity in check.quantities():
                seen[(quantity, grouping)] = None
    return list(seen)
