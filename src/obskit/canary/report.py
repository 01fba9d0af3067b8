"""The judge's report: a verdict with its reasons and one row per check, as JSON or a table.

Every check says which metric in which segment, each arm's count (the exposure: requests,
acquisitions, periods) and value (a rate, or a quantile in seconds), the effect (the canary's
rate of events over the baseline's), the evidence (the e-value and the threshold it had to
reach after Holm's correction), the decision and a one-line reason in words.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EXIT_CODES", "Arm", "Check", "Decision", "Report"]

Decision = Literal["PASS", "FAIL", "INCONCLUSIVE", "INFO"]
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
# The command line's exit status per verdict (2 is a usage, configuration or source error).
EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}


@dataclass(frozen=True)
class Arm:
    """One arm's side of a check: its exposure, its events, and the value shown."""

    count: float
    events: float | None
    value: float | None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "count": _number(self.count),
            "events": _number(self.events),
            "value": _number(self.value),
        }


@dataclass(frozen=True)
class Check:
    """One comparison's outcome."""

    metric: str
    segment: dict[str, str]
    role: str
    baseline: Arm
    canary: Arm
    effect: float | None
    e_value: float | None
    threshold: float | None
    decision: Decision
    reason: str
    tolerance: float = 0.0
    boundaries: tuple[float, ...] = ()

    @property
    def segment_text(self) -> str:
        """``all`` or ``label=value, ...``."""
        if not self.segment:
            return "all"
        return ", ".join(f"{k}={v}" for k, v in self.segment.items())

    def as_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "metric": self.metric,
            "segment": dict(self.segment),
            "role": self.role,
            "baseline": self.baseline.as_json(),
            "canary": self.canary.as_json(),
            "effect": _number(self.effect),
            "evidence": {
                "e_value": _number(self.e_value),
                "threshold": _number(self.threshold),
            },
            "tolerance": self.tolerance,
            "boundaries": list(self.boundaries),
            "decision": self.decision,
            "reason": self.reason,
        }


@dataclass
class Report:
    """A verdict, its reasons, and every check."""

    verdict: Verdict
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    looks: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 PASS, 1 FAIL, 3 INCONCLUSIVE."""
        return EXIT_CODES[self.verdict]

    def failed(self) -> list[Check]:
        """The checks that failed (gates and causes)."""
        return [c for c in self.checks if c.decision == "FAIL"]

    def as_json(self) -> dict[str, Any]:
        """The report as the ``--json`` output and the HTTP endpoints return it."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "looks": self.looks,
            **self.meta,
            "checks": [c.as_json() for c in self.checks],
        }

    def to_json(self) -> str:
        """``as_json`` serialised."""
        return json.dumps(self.as_json(), indent=2, sort_keys=False)

    def table(self, *, everything: bool = False) -> str:
        """A readable table: failed and inconclusive checks first; passing ones unless many."""
        lines = [f"verdict: {self.verdict}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        order = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2, "INFO": 3}
        rows = sorted(self.checks, key=lambda c: (order[c.decision], c.role != "gate"))
        if not everything:
            shown = [c for c in rows if c.decision != "PASS" or not c.segment or len(rows) <= 40]
            hidden = len(rows) - len(shown)
        else:
            shown, hidden = rows, 0
        header = ("decision", "metric", "segment", "baseline", "canary", "effect", "evidence")
        table = [header]
        for check in shown:
            table.append(
                (
                    check.decision if check.role == "gate" else f"{check.decision}*",
                    check.metric,
                    _clip(check.segment_text, 36),
                    _arm(check.baseline, check),
                    _arm(check.canary, check),
                    _effect(check.effect),
                    _evidence(check),
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines.append("")
        for row in table:
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
        for check in shown:
            if check.decision in ("FAIL", "INCONCLUSIVE") and check.segment_text != "":
                lines.append(f"  {check.metric} [{check.segment_text}]: {check.reason}")
        if hidden:
            lines.append(f"({hidden} passing per-segment checks not shown; --json lists all)")
        if any(c.role != "gate" for c in shown):
            lines.append(
                "* a cause (saturation, dependency): explains a failure, never fails alone"
            )
        return "\n".join(lines)


def _number(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return None
    return round(value, 6) if abs(value) < 1e6 else float(f"{value:.6g}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _arm(arm: Arm, check: Check) -> str:
    if arm.value is None:
        return f"n={arm.count:g}"
    if (check.role == "gate" and check.metric.startswith("latency")) or check.metric.endswith(
        "p99"
    ):
        return f"{arm.value * 1000:.0f} ms (n={arm.count:g})"
    if check.metric == "pool pending":
        return f"{arm.value:.2f} avg"
    return f"{arm.value:.2%} (n={arm.count:g})"


def _effect(effect: float | None) -> str:
    if effect is None:
        return "-"
    if math.isinf(effect):
        return "inf"
    return f"{effect:.2f}x"


def _evidence(check: Check) -> str:
    if check.e_value is None:
        return "-"
    threshold = f" / {check.threshold:.3g}" if check.threshold is not None else ""
    return f"e={check.e_value:.3g}{threshold}"
