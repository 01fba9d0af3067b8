"""The shop's latency objective, its rules as ``obskit slo rules`` writes them, and their burn.

The objective: 99.5% of checkouts answered within 1 s over 30 days (globex, whose dependency
takes 0.3 s, stays under it), for every tenant (one burning tenant pages even when the aggregate
does not; no page before 20 checkouts in the long window), owned by the payments team. Its rule
file is written to ``slo-rules.yml`` (load it into a real Prometheus with ``obskit demo
--serve``) and evaluated over the run's recorded scrapes by :mod:`obskit.replay` — the same
expressions, at every scrape, as a Prometheus evaluating them every interval.

A burn-rate rule looks at minutes and hours; the run lasts a minute. So the rules are evaluated
with their clock scaled by :data:`SCALE`: each second of the run counts as a minute (``[5m]``
reads 5 s, ``1h`` a minute, ``for: 2m`` 2 s). Ratios are unchanged by the scale; only the windows
shrink. The report says so beside every figure it takes from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obskit import slo
from obskit.replay.rules import Alert, evaluate_rules
from obskit.replay.store import Store
from obskit.slo.rules import RuleOptions, groups, ratio_name, render

__all__ = ["SCALE", "SHORT_RATIO", "THRESHOLD_S", "evaluate", "objectives", "rule_groups"]

SCALE = 60.0
THRESHOLD_S = 1.0
# The recorded bad share over the shortest window (5m): what recovers first after a rollback.
SHORT_RATIO = ratio_name("5m")
OPTIONS = RuleOptions(interval="1m", dense=True)
RUNBOOKS = "https://runbooks.example.com/slo"


def objectives() -> slo.ObjectiveSet:
    """The demo shop's objectives."""
    return slo.ObjectiveSet(
        (
            slo.Objective(
                name="checkout-latency",
                indicator=slo.http_latency(THRESHOLD_S, routes=["/checkout"]),
                target="99.5%",
                period="30d",
                owner="payments",
                by_tenant=True,
                tiers=("page",),
                min_events=20,
                mitigations=("roll back the last deploy", "shed the tenant's batch traffic"),
            ),
        ),
        service="shop",
        runbook_base=RUNBOOKS,
        saturation=False,
    )


def rule_groups() -> list[dict[str, Any]]:
    """The rule groups ``obskit slo rules --dense --interval 1m`` writes for them."""
    return groups(objectives(), OPTIONS)


def evaluate(out: Path, interval: float, times: Sequence[float]) -> tuple[Store, list[Alert]]:
    """Write ``slo-rules.yml``; evaluate its rules over the run's scrapes at ``times``."""
    (out / "slo-rules.yml").write_text(render(objectives(), OPTIONS), encoding="utf-8")
    store = Store.from_directory(out, interval)
    alerts = evaluate_rules(store, rule_groups(), times, SCALE)
    return store, alerts
