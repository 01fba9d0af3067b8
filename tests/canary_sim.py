"""Seeded simulations of two arms' request counts, shaped as the canary judge reads them.

Each look draws, per arm and per (route, tenant) cell, the requests, the errors and the
duration histogram's bucket counts (sequential binomials over the bucket probabilities of a
log-normal latency), and turns them into the increments a source would have read. Also used
by ``benchmarks/bench_canary.py``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from obskit.canary.checks import CheckSpec, needed
from obskit.canary.judge import Interval
from obskit.metrics.catalogue import SEMCONV_DURATION_BUCKETS, le


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A Binomial(n, p) draw: exact by inversion for small means, normal approximation else."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    mean = n * p
    if mean > 40.0:
        draw = round(rng.gauss(mean, math.sqrt(mean * (1.0 - p))))
        return min(n, max(0, draw))
    q = 1.0 - p
    ratio = p / q
    prob = q**n
    u = rng.random()
    x = 0
    while u > prob and x < n:
        u -= prob
        prob *= ratio * (n - x) / (x + 1)
        x += 1
    return x


def lognormal_buckets(median: float, sigma: float) -> list[float]:
    """The probability of each semconv bucket (last: above 10 s) for a log-normal latency."""
    cdf = [
        0.5 * (1.0 + math.erf(math.log(edge / median) / (sigma * math.sqrt(2.0))))
        for edge in SEMCONV_DURATION_BUCKETS
    ]
    cdf.append(1.0)
    return [b - a for a, b in zip([0.0, *cdf[:-1]], cdf, strict=True)]


@dataclass(frozen=True)
class Behaviour:
    """How one arm answers: its error rate and its latency distribution's buckets."""

    error_rate: float
    buckets: Sequence[float]


LES = [*(le(edge) for edge in SEMCONV_DURATION_BUCKETS), "+Inf"]


def draw_cell(rng: random.Random, n: int, behaviour: Behaviour) -> tuple[int, int, list[int]]:
    """Requests, errors and cumulative bucket counts of one cell in one interval."""
    errors = binomial(rng, n, behaviour.error_rate)
    counts = [0] * len(behaviour.buckets)
    remaining, mass = n, 1.0
    # From the slowest bucket down: the rare tail buckets are drawn exactly.
    for index in range(len(behaviour.buckets) - 1, 0, -1):
        p = behaviour.buckets[index]
        if remaining <= 0 or mass <= 0:
            break
        k = binomial(rng, remaining, min(1.0, p / mass))
        counts[index] = k
        remaining -= k
        mass -= p
    counts[0] += max(0, remaining)
    cumulative, total = [], 0
    for count in counts:
        total += count
        cumulative.append(total)
    return n, errors, cumulative


# The reads of the last specs seen per id (checked by identity: an id may be reused).
_NEEDED: dict[int, tuple[Sequence[CheckSpec], list[tuple[Any, tuple[str, ...]]]]] = {}


def interval(
    specs: Sequence[CheckSpec],
    cells: dict[tuple[str, str], tuple[int, int, list[int]]],
) -> Interval:
    """The increments a source reads for ``cells``: (route, tenant) -> (n, errors, cumulative)."""
    cached = _NEEDED.get(id(specs))
    if cached is None or cached[0] is not specs:
        cached = _NEEDED[id(specs)] = (specs, needed(specs))
    reads = cached[1]
    # Sum the cells once per grouping, then spell out each quantity's keys.
    sums: dict[tuple[str, ...], dict[tuple[str, ...], list[Any]]] = {}
    for grouping in {g for q, g in reads if q.sample.startswith(_HTTP)}:
        per: dict[tuple[str, ...], list[Any]] = {}
        for (route, tenant), (n, errors, cumulative) in cells.items():
            labels = {"http_route": route, "tenant_id": tenant}
            key = tuple(labels[g] for g in grouping)
            total = per.get(key)
            if total is None:
                per[key] = [n, errors, list(cumulative)]
            else:
                total[0] += n
                total[1] += errors
                total[2] = [a + b for a, b in zip(total[2], cumulative, strict=True)]
        sums[grouping] = per
    out: dict[tuple[object, tuple[str, ...]], dict[tuple[str, ...], float]] = {}
    for quantity, grouping in reads:
        if not quantity.sample.startswith(_HTTP):
            continue
        data: dict[tuple[str, ...], float] = {}
        for key, (n, errors, cumulative) in sums[grouping].items():
            if quantity.sample.endswith("_bucket"):
                # Zero counts too: a source sees every bucket series of the layout.
                for edge, value in zip(LES, cumulative, strict=True):
                    data[(*key, edge)] = float(value)
            elif quantity.matchers:
                if errors:
                    data[key] = float(errors)
            elif n:
                data[key] = float(n)
        if data:
            out[(quantity, grouping)] = data
    return out  # type: ignore[return-value]


_HTTP = "http_server_request_duration_seconds"
