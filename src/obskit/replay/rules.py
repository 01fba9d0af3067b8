"""A Prometheus rule file evaluated over a :class:`~obskit.replay.store.Store`.

At each evaluation time every group is evaluated in order, each rule in order (a recording
rule's output is visible to the rules after it, as in Prometheus): a recording rule writes its
series (its labels added, the name replaced; a series it stops producing goes stale); an alert
rule keeps its active alerts — pending from the first evaluation its expression returned the
series, firing once ``for`` has passed, resolved when the expression stops returning it — and
writes ``ALERTS{alertname, alertstate}`` and ``ALERTS_FOR_STATE`` (the time it became active) as
Prometheus does, so queries of the rules that read ``ALERTS`` work too.

Every group is evaluated at every time given (the rules of ``obskit slo rules --dense``);
``scale`` divides the durations in the expressions and in ``for`` (see :mod:`obskit.replay.promql`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from obskit.replay.promql import instant, parse, parse_duration
from obskit.replay.store import STALE, Labels, Store

__all__ = ["Alert", "evaluate_rules"]


@dataclasses.dataclass
class Alert:
    """One alert of one rule: its labels, and when it was pending, fired and resolved."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: float
    firing_at: float | None = None
    resolved_at: float | None = None
    last_value: float = 0.0
    max_value: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dataclasses.asdict(self)


def _labels(sample: Mapping[str, str], extra: Mapping[str, str], name: str) -> Labels:
    merged = {k: v for k, v in sample.items() if k != "__name__"}
    merged.update(extra)
    merged["__name__"] = name
    return tuple(sorted(merged.items()))


def evaluate_rules(
    store: Store, groups: Sequence[Mapping[str, Any]], times: Sequence[float], scale: float = 1.0
) -> list[Alert]:
    """Evaluate ``groups`` (a rule file's ``groups``) at each of ``times``; every alert that was
    ever active, in the order they became active."""
    alerts: list[Alert] = []
    active: dict[tuple[int, Labels], Alert] = {}
    written: dict[int, set[Labels]] = {}
    rules = [rule for group in groups for rule in group.get("rules", [])]
    trees = [parse(str(rule["expr"])) for rule in rules]
    for at in times:
        for index, (rule, tree) in enumerate(zip(rules, trees, strict=True)):
            result = instant(store, tree, at, scale)
            extra = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
            produced: set[Labels] = set()
            if "record" in rule:
                for sample, value in result:
                    labels = _labels(sample, extra, str(rule["record"]))
                    store.append(labels, at, value)
                    produced.add(labels)
                for gone in written.get(index, set()) - produced:
                    store.append(gone, at, STALE)
                written[index] = produced
                continue
            name = str(rule["alert"])
            hold = parse_duration(str(rule.get("for", "0s"))) / scale if rule.get("for") else 0.0
            annotations = {str(k): str(v) for k, v in (rule.get("annotations") or {}).items()}
            for sample, value in result:
                key_labels = _labels(sample, {**extra, "alertname": name}, "ALERTS")
                key = (index, key_labels)
                alert = active.get(key)
                if alert is None:
                    plain = {k: v for k, v in key_labels if k != "__name__"}
                    alert = active[key] = Alert(name, plain, annotations, at)
                    alerts.append(alert)
                alert.last_value = value
                alert.max_value = max(alert.max_value, value)
                if alert.firing_at is None and at - alert.active_at >= hold:
                    alert.firing_at = at
                produced.add(key_labels)
            for key in [k for k in active if k[0] == index and k[1] not in produced]:
                active.pop(key).resolved_at = at
            state_series: set[Labels] = set()
            for (rule_index, key_labels), alert in active.items():
                if rule_index != index:
                    continue
                state = "firing" if alert.firing_at is not None else "pending"
                series = tuple(sorted((*key_labels, ("alertstate", state))))
                store.append(series, at, 1.0)
                state_series.add(series)
                for_state = tuple(
                    sorted(
                        (
                            *[kv for kv in key_labels if kv[0] != "__name__"],
                            ("__name__", "ALERTS_FOR_STATE"),
                        )
                    )
                )
                store.append(for_state, at, alert.active_at)
                state_series.add(for_state)
            for gone in written.get(index, set()) - state_series:
                store.append(gone, at, STALE)
            written[index] = state_series
    return alerts
