"""The rule that says when a signal left its pre-window band: computed, not guessed.

Time is cut into intervals of ``step`` seconds. Each signal has, per interval, a number of
events and a number of *bad* events (errors; requests slower than the pre-window p99 bucket
edge; waits longer than it). The pre-window band is what the ``baseline`` period before the
window shows: the bad share p₀ = (bad₀ + ½) / (events₀ + 1) over that whole period (the ½ keeps a
clean baseline from making a single error infinitely surprising).

**An interval departs** when it has at least :data:`MIN_BAD` bad events, its bad share exceeds
p₀ by at least :data:`MIN_EXCESS` (one percentage point), and so many bad events would happen
by chance at the baseline's share with probability below :data:`ALPHA` (the exact binomial
tail, P[X ≥ bad | events, p₀] < 10⁻⁴). A single departing interval is a blip (a cold start, a
pause), not yet a symptom: a signal's **first departure** is its earliest departing interval
that the next interval with traffic confirms by departing too (or the window's last interval
with traffic). It is **back within band** from the end of the
last departing interval before :data:`CALM` consecutive intervals with traffic none of which
departs (never, if the window ends first). The *first symptom* of an incident is the earliest
first departure among the routes and tenants of the HTTP server histogram. Times are interval
ends: the change began within the ``step`` before.

A signal that is a level rather than a count (a gauge, a counter's rate: CPU throttling, pool
timeouts, requests pending on a pool) departs in an interval where it exceeds 1.5 times the largest
value of the pre-window period and the floor given for that signal, confirmed the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

__all__ = [
    "ALPHA",
    "CALM",
    "MIN_BAD",
    "MIN_EXCESS",
    "Counts",
    "Departure",
    "baseline_share",
    "binomial_tail",
    "count_departure",
    "level_departure",
    "quantile",
    "slow_edge",
]

ALPHA = 1e-4
MIN_BAD = 3
MIN_EXCESS = 0.01
CALM = 3
LEVEL_FACTOR = 1.5


@dataclasses.dataclass(frozen=True)
class Counts:
    """One interval of a counted signal: it ends at ``at``; ``events`` of which ``bad``."""

    at: float
    events: float
    bad: float

    @property
    def share(self) -> float:
        """The bad share (0 without events)."""
        return self.bad / self.events if self.events > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Departure:
    """Where a signal left its band, how far it went and when it came back.

    ``first`` and ``worst`` are interval end times; ``baseline`` is the pre-window bad share
    as observed (or the largest pre-window level); ``first_value`` and ``worst_value`` the share
    (or level) in those intervals; ``bad`` and ``events`` are summed over the departing
    intervals from the first departure to the recovery.
    """

    first: float
    first_value: float
    worst: float
    worst_value: float
    baseline: float
    recovered: float | None
    bad: float
    events: float
    intervals: int


def baseline_share(bad: float, events: float) -> float:
    """p₀: the pre-window bad share with half an event of prior (never 0, never 1)."""
    return (bad + 0.5) / (events + 1.0)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P[X ≥ k] for X ~ Binomial(n, p), summed in log space (exact for the counts seen here)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for x in range(k, n + 1):
        term = math.exp(
            math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_p
            + (n - x) * log_q
        )  # fmt: skip
        total += term
        if x > k and term < total * 1e-12:
            break
    return min(1.0, total)


def _surprise(interval: Counts, p0: float) -> float:
    """P[X ≥ bad] at the baseline's share, or 1 when the interval cannot depart."""
    if interval.bad < MIN_BAD or interval.events <= 0:
        return 1.0
    if interval.share < p0 + MIN_EXCESS:
        return 1.0
    # Prometheus' increase() extrapolates: counts are rounded to whole events for the test.
    n = max(1, round(interval.events))
    k = min(n, round(interval.bad))
    return binomial_tail(k, n, p0)


def _first_confirmed(window: Sequence[Counts], flags: Sequence[bool]) -> int | None:
    """The first departing interval that the next one with traffic confirms (or the last
    with traffic)."""
    for index, flag in enumerate(flags):
        if not flag:
            continue
        following = [k for k in range(index + 1, len(window)) if window[k].events > 0]
        if not following or flags[following[0]]:
            return index
    return None


def count_departure(
    intervals: Sequence[Counts], baseline_bad: float, baseline_events: float, start: float
) -> Departure | None:
    """The first departure of a counted signal among ``intervals`` ending after ``start``."""
    p0 = baseline_share(baseline_bad, baseline_events)
    window = [c for c in intervals if c.at > start]
    flags = [_surprise(c, p0) < ALPHA for c in window]
    first_index = _first_confirmed(window, flags)
    if first_index is None:
        return None
    recovered, last = _recovered(window, flags, first_index)
    departing = [c for k, c in enumerate(window) if flags[k] and first_index <= k <= last]
    worst = max(departing, key=lambda c: c.share)
    return Departure(
        first=window[first_index].at,
        first_value=window[first_index].share,
        worst=worst.at,
        worst_value=worst.share,
        baseline=baseline_bad / baseline_events if baseline_events > 0 else 0.0,
        recovered=recovered,
        bad=sum(c.bad for c in departing),
        events=sum(c.events for c in departing),
        intervals=len(departing),
    )


def _recovered(
    window: Sequence[Counts], flags: Sequence[bool], first: int
) -> tuple[float | None, int]:
    """When the signal came back (the end of the last departing interval before CALM calm
    intervals with traffic), and that interval's index (the window's last when it did not)."""
    last, run = first, 0
    for index in range(first + 1, len(window)):
        if flags[index]:
            last, run = index, 0
        elif window[index].events > 0:
            run += 1
            if run >= CALM:
                return window[last].at, last
    return None, len(window) - 1


def level_departure(
    points: Sequence[tuple[float, float]], start: float, floor: float
) -> Departure | None:
    """The first departure of a level (gauge or rate) after ``start``: above 1.5 times the largest
    pre-window value and above ``floor``."""
    before = [v for at, v in points if at <= start and not math.isnan(v)]
    after = [(at, v) for at, v in points if at > start and not math.isnan(v)]
    ceiling = max(before) if before else 0.0
    limit = max(ceiling * LEVEL_FACTOR, floor)
    flags = [v > limit for _, v in after]
    calm = [Counts(at, 1.0, 0.0) for at, _ in after]
    first_index = _first_confirmed(calm, flags)
    if first_index is None:
        return None
    recovered, last = _recovered(calm, flags, first_index)
    departing = [after[k] for k in range(first_index, last + 1) if flags[k]]
    worst_at, worst_value = max(departing, key=lambda p: p[1])
    return Departure(
        first=after[first_index][0],
        first_value=after[first_index][1],
        worst=worst_at,
        worst_value=worst_value,
        baseline=ceiling,
        recovered=recovered,
        bad=0.0,
        events=0.0,
        intervals=len(departing),
    )


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative bucket counts ``(upper edge, count)`` (ascending, ``inf``
    last), interpolated within its bucket as Prometheus' ``histogram_quantile`` does."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for edge, count in buckets:
        if count >= rank:
            if math.isinf(edge):
                return lower_edge  # the last finite edge: the histogram says no more
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return lower_edge


def slow_edge(buckets: Sequence[tuple[float, float]], q: float = 0.99) -> float | None:
    """The upper edge of the bucket holding the ``q`` quantile (a finite edge), or None."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    finite = [(edge, count) for edge, count in buckets if not math.isinf(edge)]
    for edge, count in finite:
        if count >= rank:
            return edge
    return finite[-1][0] if finite else None
