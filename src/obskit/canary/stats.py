"""The judge's statistics: anytime-valid tests on counts, and Holm's correction across checks.

**The test.** Each check compares a count of *events* (errors, requests slower than a bucket
boundary, pool waits above one) out of an *exposure* (requests, acquisitions) in the canary and
the baseline. Per interval, given the events of both arms, ``m = x_c + x_b``, the canary's share
is ``x_c | m ~ Binomial(m, π(r))`` with ``π(r) = r·n_c / (r·n_c + n_b)`` when the canary's event
rate is ``r`` times the baseline's — whatever the traffic split of that interval and whatever
both arms went through together (a slow dependency, a GC storm). The null hypothesis is
``r ≤ r0`` (``r0`` = 1 + the allowed relative increase). The likelihood ratio against ``r0`` of
each alternative ``r0·g`` on a fixed grid ``g ∈ GRID``, multiplied over intervals, is a
nonnegative supermartingale under the null (for any ``r ≤ r0``, since the ratio is increasing in
``π``); so is their average ``E_t``. Ville's inequality gives ``P(∃t: E_t ≥ 1/alpha) ≤ alpha``:
the judge may be asked every interval, for as long as it likes, and a canary no worse than
allowed fails with probability at most ``alpha``. An interval where neither arm had an event
contributes 1.
(Lindon, Sanden & Shirikian, KDD 2022, compare counting processes the same way.)

The binomial coefficients cancel in the ratio (no ``math.lgamma`` needed), so the
log-likelihood ratio of one interval is ``x_c·log(π1/π0) + x_b·log((1-π1)/(1-π0))``.

**Several boundaries.** For latency the same test runs on the counts above each of a few bucket
boundaries chosen before the data it tests (see :func:`bracket`); the average of those
e-processes is again one, so no correction is needed among them.

**Many checks.** Each check's e-value gives an anytime-valid p-value ``min(1, 1/max_t E_t)``.
Holm's step-down procedure on those p-values keeps the family-wise error rate at ``alpha`` under
any dependence between checks (per-tenant checks share their route's traffic), which is what a
gate needs: the chance that a good canary fails *at all*. Benjamini-Hochberg would bound the
expected share of false failures among failures instead, which for a pass/fail gate is the
wrong promise, and needs positive dependence to hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["GRID", "RatioTest", "average_log_e", "bracket", "holm", "holm_threshold"]

# Alternatives, as multiples of the tolerated ratio r0: from a small regression to a broken one.
GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
# Beyond this the e-value is reported as "at least" (the decision is long made).
_LOG_CAP = 700.0


@dataclass
class RatioTest:
    """The e-process of one check: canary events vs baseline events, tolerated ratio ``r0``."""

    r0: float = 1.0
    grid: tuple[float, ...] = GRID
    events: list[float] = field(default_factory=lambda: [0.0, 0.0])  # canary, baseline
    exposure: list[float] = field(default_factory=lambda: [0.0, 0.0])
    _logs: list[float] = field(default_factory=list)
    _max_log_e: float = 0.0

    def __post_init__(self) -> None:
        if not self.r0 >= 1.0:
            raise ValueError(f"the tolerated ratio r0 must be >= 1, not {self.r0}")
        self._logs = [0.0] * len(self.grid)

    def update(self, x_c: float, n_c: float, x_b: float, n_b: float) -> None:
        """Add one interval: canary ``x_c`` events of ``n_c``, baseline ``x_b`` of ``n_b``."""
        self.events[0] += x_c
        self.events[1] += x_b
        self.exposure[0] += n_c
        self.exposure[1] += n_b
        if x_c + x_b <= 0 or n_c <= 0 or n_b <= 0:
            return  # no events, or one arm without exposure: no information about the ratio
        base = self.r0 * n_c
        p0 = base / (base + n_b)
        log_p0, log_q0 = math.log(p0), math.log1p(-p0)
        logs = self._logs
        log, log1p = math.log, math.log1p
        for k, g in enumerate(self.grid):
            alt = base * g
            p1 = alt / (alt + n_b)
            logs[k] += x_c * (log(p1) - log_p0) + x_b * (log1p(-p1) - log_q0)
        top = max(logs)
        if top > self._max_log_e:  # E <= its largest term: no need to average below the max
            log_e = self.log_e_value
            if log_e > self._max_log_e:
                self._max_log_e = log_e

    @property
    def log_e_value(self) -> float:
        """``log E_t``: the log of the average likelihood ratio over the grid."""
        top = max(self._logs)
        total = sum(math.exp(v - top) for v in self._logs)
        return min(_LOG_CAP, top + math.log(total / len(self._logs)))

    @property
    def e_value(self) -> float:
        """``E_t`` now (1 before any informative interval)."""
        return math.exp(self.log_e_value)

    @property
    def p_value(self) -> float:
        """The anytime-valid p-value ``min(1, 1/max_t E_t)``."""
        return min(1.0, math.exp(-self._max_log_e))

    def ratio(self) -> float | None:
        """The canary's event rate over the baseline's, from the totals (None when undefined)."""
        (x_c, x_b), (n_c, n_b) = self.events, self.exposure
        if n_c <= 0 or n_b <= 0:
            return None
        if x_b <= 0:
            return None if x_c <= 0 else math.inf
        return (x_c / n_c) / (x_b / n_b)


def average_log_e(tests: Sequence[RatioTest]) -> float:
    """``log`` of the average of several tests' e-values (still an e-process: no correction)."""
    logs = [t.log_e_value for t in tests]
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise level ``alpha``, in the order given."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    rejected = [False] * len(p_values)
    total = len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (total - rank):
            break
        rejected[index] = True
    return rejected


def holm_threshold(rank: int, total: int, alpha: float) -> float:
    """The e-value the check ranked ``rank`` (0 = strongest) of ``total`` must reach."""
    return (total - rank) / alpha


def bracket(edges: Sequence[float], cumulative: Sequence[float], quantile: float) -> list[float]:
    """The bucket boundaries around ``quantile`` of a histogram: the edge the quantile falls
    under and the one below it (finite edges only, in increasing order).

    ``cumulative[i]`` counts observations ``<= edges[i]``; the last entry is the total (``+Inf``).
    Counting requests above these edges is what "the p99 moved" means on a histogram.
    """
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return []
    finite = [(e, c) for e, c in zip(edges, cumulative, strict=False) if math.isfinite(e)]
    for index, (edge, count) in enumerate(finite):
        if count >= quantile * total:
            below = [finite[index - 1][0]] if index > 0 else []
            return [*below, edge]
    return [finite[-1][0]] if finite else []
