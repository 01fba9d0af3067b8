"""After the run: the objective's burn, the incident timeline and the postmortem draft.

All three read the run's recorded scrapes through :mod:`obskit.replay` (no Prometheus needed, so
the report is the same on every machine): :mod:`obskit.demo.burn` evaluates the rules ``obskit
slo rules`` writes; ``obskit incident``'s own :func:`~obskit.incident.timeline.gather` and
:func:`~obskit.incident.postmortem.draft` then read that recording — deploy markers and log
lines from the run's files, kept traces from its span sinks — exactly as they read a server.
The timeline and the draft are written to ``timeline.md``, ``timeline.json`` and
``postmortem.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from obskit.demo import burn
from obskit.incident import postmortem
from obskit.incident import render as incident_render
from obskit.incident.timeline import gather
from obskit.replay.client import RecordedPrometheus
from obskit.replay.rules import Alert
from obskit.replay.store import Store
from obskit.slo.rules import ALERT

__all__ = ["STEP", "run"]

# The timeline's interval: a departure needs a few slow requests in an interval and the next.
STEP = 5.0
SHOPS = ("shop-1", "shop-2", "shop-canary")


def _alert_rows(alerts: list[Alert], started: float) -> list[dict[str, Any]]:
    """The burn alerts (``SLOMetricAbsent`` is pending for the seconds before the first
    checkout is scraped: a run's start, not the story)."""
    return [
        {
            "name": a.name,
            "tier": f"{a.labels.get('severity', '')} {a.labels.get('long_window', '')}/"
            f"{a.labels.get('short_window', '')}",
            "slo": a.labels.get("slo", ""),
            "tenant": a.labels.get("tenant_id", ""),
            "owner": a.labels.get("owner", ""),
            "severity": a.labels.get("severity", ""),
            "runbook_url": a.annotations.get("runbook_url", ""),
            "pending_t": a.active_at - started,
            "firing_t": a.firing_at - started if a.firing_at is not None else None,
            "resolved_t": a.resolved_at - started if a.resolved_at is not None else None,
            "max_burn": a.max_value,
        }
        for a in alerts
        if a.name == ALERT
    ]


def _page() -> dict[str, Any]:
    """The objective's page: the alert, whom it pages, the runbook, each tier's factor."""
    objective = burn.objectives().objectives[0]
    rules = [
        rule
        for group in burn.rule_groups()
        for rule in group.get("rules", [])
        if rule.get("alert") == ALERT
    ]
    first = rules[0] if rules else {}
    return {
        "alert": ALERT,
        "owner": objective.owner,
        "runbook_url": str((first.get("annotations") or {}).get("runbook_url", "")),
        "tiers": [
            {
                "severity": tier.severity,
                "factor": float(tier.budget_share * objective.period / tier.long),
                "long_s": tier.long,
                "short_s": tier.short,
                "for_s": tier.hold,
            }
            for tier in objective.tiers
        ],
    }


def _burns(store: Store, started: float, rolled_back: float | None) -> list[dict[str, Any]]:
    """Per tenant, the short window's burn (its bad share / the budget): peak, at the rollback,
    at the end of the run."""
    objective = burn.objectives().objectives[0]
    budget = float(1 - objective.target)
    found = []
    for labels in store.by_name.get(burn.SHORT_RATIO, []):
        named = dict(labels)
        if named.get("slo") != objective.name or not named.get("tenant_id"):
            continue
        points = store.window(labels, -math.inf, math.inf)
        if not points:
            continue
        peak_at, peak = max(points, key=lambda p: p[1])
        after = [v for at, v in points if rolled_back is not None and at >= rolled_back]
        found.append(
            {
                "tenant": named["tenant_id"],
                "peak": peak / budget,
                "peak_t": peak_at - started,
                "at_rollback": after[0] / budget if after else None,
                "end": points[-1][1] / budget,
            }
        )
    return sorted(found, key=lambda row: -float(row["peak"]))


def run(out: Path, interval: float, times: dict[str, float | None]) -> dict[str, Any]:
    """Burn, timeline and postmortem of the run in ``out``; the figures the report shows."""
    rows = [json.loads(line) for line in (out / "scrapes.jsonl").read_text().splitlines() if line]
    started = float(times["started"] or rows[0]["at"])
    evaluations = [float(r["at"]) for r in rows if r["instance"] == "shop-1"]
    store, alerts = burn.evaluate(out, interval, evaluations)
    objective = burn.objectives().objectives[0]
    figures: dict[str, Any] = {
        "scale": burn.SCALE,
        "rules": str(out / "slo-rules.yml"),
        "objective": {
            "name": objective.name,
            "target": float(objective.target),
            "threshold_s": burn.THRESHOLD_S,
            "owner": objective.owner,
        },
        "page": _page(),
        "alerts": _alert_rows(alerts, started),
        "burn_short": _burns(store, started, times["rolled_back"]),
        "timeline": None,
    }
    deployed = times["deployed"]
    if deployed is None or not rows:
        return figures
    client = RecordedPrometheus(store, burn.rule_groups(), url=f"the recording in {out}")
    start = float(deployed) - 2.0
    timeline = gather(
        client,
        start,
        float(rows[-1]["at"]),
        service="shop",
        baseline=max(STEP, start - started - 1.0),
        step=STEP,
        logs=[str(out / "deploys.log"), *(str(out / f"{n}.log") for n in SHOPS)],
        traces=[out / f"{n}-spans.jsonl" for n in SHOPS],
    )
    data = timeline.to_json()
    (out / "timeline.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    (out / "timeline.md").write_text(incident_render.markdown(timeline), encoding="utf-8")
    draft = postmortem.draft(timeline, title="a canary raised initech's checkout p99")
    (out / "postmortem.md").write_text(draft, encoding="utf-8")
    figures["timeline"] = {
        "rows": [{**row, "t": row["at"] - started} for row in data["rows"]],
        "first_symptom_t": data["first_symptom"]["first"] - started
        if data["first_symptom"]
        else None,
        "detection_gap_s": data["detection_gap"],
        "notes": data["notes"],
        "step_s": STEP,
        "markdown": str(out / "timeline.md"),
        "postmortem": str(out / "postmortem.md"),
        "action_items": _action_items(draft),
    }
    return figures


def _action_items(draft: str) -> list[str]:
    """The action column of the draft's action-item table."""
    lines = draft.split("## Action items", 1)[-1].splitlines()
    found = []
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            found.append(f"{cells[1]} — {cells[2]}")
    return found
