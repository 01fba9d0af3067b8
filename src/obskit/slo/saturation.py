"""Resource signals beside the objectives: tickets alone, pages only with user impact.

CPU throttling, event-loop lag and connection-pool waits say a resource is short; they do not
say a user is harmed. Each becomes a ``ResourceSaturation`` alert of severity ``ticket``, and a
second one of severity ``page`` that fires only while the same signal is high *and* an
objective of the set is burning fast enough to page (its ``SLOBurn`` page alert fires).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from obskit.metrics import promql
from obskit.metrics.promql import Selector
from obskit.slo import _signals

if TYPE_CHECKING:
    from obskit.slo.objectives import ObjectiveSet

__all__ = ["ALERT", "SIGNALS", "Signal", "rules"]

ALERT = "ResourceSaturation"
#: The burn alerts' name (``obskit.slo.rules.ALERT``; defined here, where a page joins on it,
#: because rules imports this module).
BURN_ALERT = "SLOBurn"
HOLD = "15m"


@dataclasses.dataclass(frozen=True)
class Signal:
    """One saturation signal: a PromQL value and the level above which it is high."""

    name: str
    threshold: str
    meaning: str

    def expr(self, where: dict[str, str]) -> str:
        """The signal's current value, restricted to the service's series."""
        return _EXPRESSIONS[self.name](where)


def _cpu(where: dict[str, str]) -> str:
    throttled = promql.sum_by(
        promql.rate(Selector(_signals.CGROUP_THROTTLED.sample).where(**where), "5m")
    )
    periods = promql.sum_by(
        promql.rate(Selector(_signals.CGROUP_PERIODS.sample).where(**where), "5m")
    )
    return f"{throttled} / ({periods} > 0)"


def _loop(where: dict[str, str]) -> str:
    buckets = Selector(_signals.EVENT_LOOP_LAG.bucket).where(**where)
    return promql.histogram_quantile(0.99, buckets, "5m")


def _pool(where: dict[str, str]) -> str:
    buckets = Selector(_signals.POOL_WAIT.bucket).where(**where)
    return promql.histogram_quantile(0.95, buckets, "5m", by=_signals.POOL_WAIT.labels)


_EXPRESSIONS = {"cpu_throttling": _cpu, "event_loop_lag": _loop, "pool_wait": _pool}

SIGNALS: tuple[Signal, ...] = (
    Signal("cpu_throttling", "0.25", "share of CFS periods in which the cgroup was throttled"),
    Signal("event_loop_lag", "0.1", "p99 event-loop lag in seconds"),
    Signal("pool_wait", "0.1", "p95 wait for a database connection in seconds, by pool"),
)


def rules(sets: ObjectiveSet) -> list[dict[str, Any]]:
    """The ticket and the joined page alert of every signal (none when the set opts out)."""
    if not sets.saturation:
        return []
    pages = "|".join(o.name for o in sets.objectives if any(t.severity == "page" for t in o.tiers))
    out: list[dict[str, Any]] = []
    for signal in SIGNALS:
        high = promql.compare(signal.expr(sets.common_where), ">", signal.threshold)
        base = {"signal": signal.name, "owner": sets.owner}
        summary = f'{signal.meaning} is {{{{ $value | printf "%.3g" }}}}, above {signal.threshold}'
        out.append(
            {
                "alert": ALERT,
                "expr": high,
                "for": HOLD,
                "labels": {**base, "severity": "ticket"},
                "annotations": {"summary": summary + " (no objective is burning: a ticket)."},
            }
        )
        if pages:
            # Objective names are [a-z0-9-]: an alternation of them needs no escaping.
            burning = (
                Selector("ALERTS")
                .where(alertname=BURN_ALERT, alertstate="firing", severity="page")
                .matching(promql.Matcher("slo", "=~", pages))
            )
            out.append(
                {
                    "alert": ALERT,
                    "expr": f"({high})\nand on ()\n  count({burning}) > 0\n",
                    "labels": {**base, "severity": "page"},
                    "annotations": {
                        "summary": summary + " while an objective is burning its budget: a page."
                    },
                }
            )
    return out
