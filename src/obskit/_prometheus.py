"""The few Prometheus HTTP API calls obskit's tools make: queries, ranges, exemplars, rules.

One client for the canary judge and the incident timeline. Every call goes through
:mod:`obskit._selfhttp` (bounded as a whole, never instrumented, capped in size) and counts
itself, so a report can say how many queries it cost. Answers are checked before they are used:
a body that is not Prometheus' API shape is an error naming what was wrong, never an exception
from deep inside a caller. Values Prometheus writes as ``NaN`` or ``±Inf`` come back as NaN
(no count or level is infinite; callers skip NaN as "no sample").

A failure is a :class:`PrometheusError`. ``answered`` tells the two kinds apart: Prometheus
answered and refused the question (a bad query, a query that timed out inside Prometheus: the
next question may work), or it could not be asked at all (unreachable, no answer in time,
something that is not Prometheus answering: the next question will fail the same way).
"""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

from obskit._selfhttp import HttpError, base_url, detail, get

__all__ = ["MAX_POINTS", "Prometheus", "PrometheusError", "Series"]

# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusError(Exception):
    """Prometheus could not be asked (``answered`` False), or refused the question (True)."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


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


def _seconds(value: float) -> str:
    """A time or a step as the API reads it: exact to the millisecond, no exponent."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


class Prometheus:
    """A client for one Prometheus (``url``: its base, e.g. ``http://prometheus:9090``);
    ``timeout``: seconds each call may take in all."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        try:
            self.url = base_url(url, "--prometheus")
        except ValueError as exc:
            raise PrometheusError(str(exc)) from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise PrometheusError(f"a timeout is a positive number of seconds, not {timeout!r}")
        self.timeout = timeout
        self.calls = 0

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        where = f"{self.url}{path}"
        self.calls += 1
        try:
            body = get(f"{where}?{urllib.parse.urlencode(params)}", timeout=self.timeout).json()
        except HttpError as exc:
            refused = _api_error(exc.body)
            if refused is not None:
                raise PrometheusError(f"{where}: {refused}", answered=True) from None
            reason = str(exc).removeprefix(f"{where}: ")
            raise PrometheusError(
                f"cannot ask Prometheus at {self.url}: GET {path}: {reason}"
            ) from None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise PrometheusError(
                f"cannot ask Prometheus at {self.url}: GET {path}: not a Prometheus API answer: "
                f"{detail(str(body))}"
            )
        if body["status"] != "success":
            raise PrometheusError(f"{where}: {_api_error(body) or 'error'}", answered=True)
        return body.get("data")

    def _vector_or_matrix(self, where: str, data: Any, kind: str) -> list[Any]:
        if not isinstance(data, dict) or data.get("resultType") != kind:
            got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise PrometheusError(f"{self.url}{where}: expected a {kind}, got {got}", answered=True)
        result = data.get("result")
        if not isinstance(result, list):
            raise PrometheusError(f"{self.url}{where}: not a Prometheus API answer: no result")
        return result

    def query(self, expr: str, at: float) -> list[Series]:
        """An instant query's vector at ``at`` (seconds since the epoch)."""
        path = "/api/v1/query"
        data = self._get(path, {"query": expr, "time": _seconds(at)})
        try:
            return [
                Series(_labels(r), ((float(r["value"][0]), _number(r["value"][1])),))
                for r in self._vector_or_matrix(path, data, "vector")
            ]
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusError(f"{self.url}{path}: not a Prometheus API answer") from None

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query's matrix; ``step`` is widened if the range would exceed Prometheus'
        limit on points."""
        path = "/api/v1/query_range"
        step = max(step, (end - start) / (MAX_POINTS - 1))
        params = {
            "query": expr,
            "start": _seconds(start),
            "end": _seconds(end),
            "step": format(step, ".15g"),
        }
        data = self._get(path, params)
        try:
            return [
                Series(_labels(r), tuple((float(t), _number(v)) for t, v in r["values"]))
                for r in self._vector_or_matrix(path, data, "matrix")
            ]
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusError(f"{self.url}{path}: not a Prometheus API answer") from None

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """``/api/v1/query_exemplars``: per series, its labels and exemplars (labels, value,
        timestamp). Empty when the server stores none (``--enable-feature=exemplar-storage``)."""
        path = "/api/v1/query_exemplars"
        params = {"query": expr, "start": _seconds(start), "end": _seconds(end)}
        data = self._get(path, params) or []
        if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
            raise PrometheusError(f"{self.url}{path}: not a Prometheus API answer")
        return list(data)

    def alerting_rules(self) -> list[dict[str, Any]]:
        """Every alerting rule loaded (``/api/v1/rules?type=alert``), with its group's name."""
        path = "/api/v1/rules"
        data = self._get(path, {"type": "alert"})
        groups = data.get("groups", []) if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise PrometheusError(f"{self.url}{path}: not a Prometheus API answer")
        rules: list[dict[str, Any]] = []
        for group in groups:
            for rule in group.get("rules", []) if isinstance(group, dict) else []:
                if isinstance(rule, dict) and rule.get("type") == "alerting":
                    rules.append({**rule, "group": group.get("name", "")})
        return rules


def _labels(result: Any) -> dict[str, str]:
    labels = result["metric"]
    if not isinstance(labels, dict):
        raise TypeError("labels are a mapping")
    return {str(k): str(v) for k, v in labels.items()}


def _api_error(body: Any) -> str | None:
    """``errorType: error`` of a Prometheus error object (a dict, or the raw bytes of one)."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            return None
    if not isinstance(body, dict) or body.get("status") != "error":
        return None
    kind, error = body.get("errorType"), body.get("error")
    return detail(f"{kind}: {error}" if kind else str(error))
