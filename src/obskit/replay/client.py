"""The Prometheus API calls ``obskit incident`` makes, answered from a recorded store.

:class:`RecordedPrometheus` has the methods of :class:`obskit._prometheus.Prometheus`
(``query``, ``range``, ``exemplars``, ``alerting_rules``) and the same answer shapes, so
:func:`obskit.incident.timeline.gather` reads a recording exactly as it reads a server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from obskit._prometheus import PrometheusError, Series
from obskit.replay.promql import QueryError, evaluate, parse_duration
from obskit.replay.store import Store

__all__ = ["RecordedPrometheus"]


class RecordedPrometheus:
    """A read-only Prometheus over ``store``; ``rules``: the rule groups evaluated into it."""

    def __init__(
        self, store: Store, rules: Sequence[Mapping[str, Any]] = (), url: str = "recorded"
    ) -> None:
        self.store = store
        self.rules = list(rules)
        self.url = url
        self.calls = 0

    def _vector(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        self.calls += 1
        try:
            result = evaluate(self.store, expr, at)
        except QueryError as exc:
            # As a server refusing a query: the timeline notes it and reads the rest.
            raise PrometheusError(f"{self.url}: {exc}", answered=True) from None
        if isinstance(result, float):
            return [({}, result)]
        return [(labels, value) for labels, value in result if isinstance(value, float)]

    def query(self, expr: str, at: float) -> list[Series]:
        """An instant query's vector at ``at``."""
        return [Series(labels, ((at, value),)) for labels, value in self._vector(expr, at)]

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query's matrix (one evaluation per step, as Prometheus does)."""
        points: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        count = math.floor((end - start) / step + 1e-9) + 1
        for n in range(count):
            at = start + n * step
            for labels, value in self._vector(expr, at):
                if not math.isnan(value):
                    points.setdefault(tuple(sorted(labels.items())), []).append((at, value))
        self.calls -= count - 1  # one query, as a server counts it
        return [Series(dict(key), tuple(found)) for key, found in points.items()]

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """No exemplars: the recording keeps the text exposition."""
        self.calls += 1
        return []

    def alerting_rules(self) -> list[dict[str, Any]]:
        """The alerting rules of the groups, shaped as ``/api/v1/rules`` returns them."""
        self.calls += 1
        found = []
        for group in self.rules:
            for rule in group.get("rules", []):
                if "alert" not in rule:
                    continue
                hold = rule.get("for")
                found.append(
                    {
                        "name": rule["alert"],
                        "query": str(rule["expr"]),
                        "labels": dict(rule.get("labels") or {}),
                        "annotations": dict(rule.get("annotations") or {}),
                        "duration": parse_duration(str(hold)) if hold else 0,
                        "type": "alerting",
                        "group": group.get("name", ""),
                    }
                )
        return found
