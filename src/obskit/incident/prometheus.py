"""The few Prometheus HTTP API calls the incident timeline makes, as obskit's own work.

Instant and range queries, the exemplar API (``/api/v1/query_exemplars``) and the loaded rules
(``/api/v1/rules``). Every call goes through :mod:`obskit.incident._http` (never instrumented,
bounded by a timeout) and counts itself, so a report can say how many queries it cost. A failure
is a :class:`PrometheusError` naming the URL and Prometheus' own error text.
"""

from __future__ import annotations

import dataclasses
import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

from obskit.incident._http import HttpError, get_json

__all__ = ["Prometheus", "PrometheusError", "Series"]

# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused the question."""


@dataclasses.dataclass(frozen=True)
class Series:
    """One series of a query's answer: its labels and its (time, value) points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]

    def value_at(self, moment: float) -> float | None:
        """The value at exactly ``moment`` (a step of the range), or None."""
        for at, value in self.points:
            if abs(at - moment) < 1e-6:
                return value
        return None


def _number(text: Any) -> float:
    value = float(text)
    return value if math.isfinite(value) else math.nan


class Prometheus:
    """A client for one Prometheus (``url``: its base, e.g. ``http://prometheus:9090``)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PrometheusError(f"--prometheus must be an http:// or https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.calls = 0

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        self.calls += 1
        try:
            body = get_json(f"{self.url}{path}{query}", self.timeout)
        except HttpError as exc:
            raise PrometheusError(str(exc)) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"{self.url}{path}: {error}")
        return body.get("data")

    def query(self, expr: str, at: float) -> list[Series]:
        """An instant query's vector at ``at`` (seconds since the epoch)."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        if data.get("resultType") != "vector":
            raise PrometheusError(f"expected a vector for {expr}, got {data.get('resultType')}")
        return [
            Series(dict(r["metric"]), ((float(r["value"][0]), _number(r["value"][1])),))
            for r in data["result"]
        ]

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query's matrix; ``step`` is widened if the range would exceed Prometheus'
        limit on points."""
        step = max(step, (end - start) / (MAX_POINTS - 1))
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self._get("/api/v1/query_range", params)
        return [
            Series(dict(r["metric"]), tuple((float(t), _number(v)) for t, v in r["values"]))
            for r in data["result"]
        ]

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """``/api/v1/query_exemplars``: per series, its labels and exemplars (labels, value,
        timestamp). Empty when the server stores none (``--enable-feature=exemplar-storage``)."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return list(self._get("/api/v1/query_exemplars", params) or [])

    def alerting_rules(self) -> list[dict[str, Any]]:
        """Every alerting rule loaded (``/api/v1/rules?type=alert``), with its group's name."""
        data = self._get("/api/v1/rules", {"type": "alert"})
        rules: list[dict[str, Any]] = []
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("type") == "alerting":
                    rules.append({**rule, "group": group.get("name", "")})
        return rules
