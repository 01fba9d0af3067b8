"""Where to look: the exemplars of kept error and slow traces in the window.

obskit attaches a trace id to a duration observation only once the tail sampler has kept that
trace, so every exemplar Prometheus stores (``/api/v1/query_exemplars``, Prometheus started with
``--enable-feature=exemplar-storage``) points at a kept trace. The timeline lists those of
failed requests (``error_type`` set) and of slow ones (above the pre-window p99 bucket edge of
their route and tenant), the symptoms' routes and tenants first. Their correlation ids come
from the kept-trace file (``--traces``: the server span's ``correlation_id``) or the log lines
(``--logs``: any line of the trace).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from obskit._prometheus import Prometheus
from obskit.incident.signals import ROUTE, TENANT, Movement, Window
from obskit.metrics import catalogue
from obskit.metrics.promql import Selector

__all__ = ["Exemplar", "find", "kept_traces"]


@dataclasses.dataclass
class Exemplar:
    """One exemplar: its trace, when, how long the request took and which request it was."""

    trace_id: str
    at: float
    seconds: float
    route: str
    tenant: str
    status: str
    kind: str  # "error" or "slow"
    in_symptom: bool
    correlation_id: str = ""
    kept: bool | None = None  # in the kept-trace file (None: no file given)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dataclasses.asdict(self)


def find(
    prometheus: Prometheus,
    window: Window,
    symptoms: Sequence[Movement],
    edges: Mapping[tuple[str, str], float],
    limit: int,
) -> tuple[list[Exemplar], str]:
    """Up to ``limit`` exemplars of failed or slow requests in the window, and the query asked.

    ``edges``: the pre-window p99 bucket edge per (route, tenant). Requests in a symptom's
    route and tenant come first, then failures before slow ones, then by time.
    """
    selector = Selector(catalogue.HTTP_SERVER_DURATION.bucket).matching(*window.scope)
    answer = prometheus.exemplars(str(selector), window.start, window.end)
    hurt = {(m.labels.get(ROUTE, ""), m.labels.get(TENANT, "")) for m in symptoms}
    found: dict[str, Exemplar] = {}
    for series in answer:
        labels = series.get("seriesLabels", {})
        route, tenant = labels.get(ROUTE, ""), labels.get(TENANT, "")
        failed = bool(labels.get("error_type"))
        for exemplar in series.get("exemplars", []):
            trace_id = exemplar.get("labels", {}).get("trace_id", "")
            if not trace_id or trace_id in found:
                continue
            seconds = float(exemplar.get("value", 0.0))
            edge = edges.get((route, tenant))
            slow = edge is not None and seconds > edge
            if not failed and not slow:
                continue
            found[trace_id] = Exemplar(
                trace_id=trace_id,
                at=float(exemplar.get("timestamp", 0.0)),
                seconds=seconds,
                route=route,
                tenant=tenant,
                status=labels.get("http_response_status_code", ""),
                kind="error" if failed else "slow",
                in_symptom=(route, tenant) in hurt,
            )
    ordered = sorted(found.values(), key=lambda e: (not e.in_symptom, e.kind != "error", e.at))
    return ordered[:limit], str(selector)


def kept_traces(paths: Iterable[Path], wanted: set[str]) -> dict[str, dict[str, Any]]:
    """For each wanted trace id found in kept-span files (obskit's JSON-lines sink, or its
    rotated ``.1``), what its local root server span says (correlation id, route, status)."""
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists() and not Path(f"{path}.1").exists():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        for candidate in (Path(f"{path}.1"), path):
            if not candidate.exists():
                continue
            with candidate.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if not any(t in line for t in wanted):
                        continue
                    try:
                        span = json.loads(line)
                    except ValueError:
                        continue
                    trace_id = span.get("trace_id")
                    if trace_id not in wanted or not isinstance(span, dict):
                        continue
                    entry = found.setdefault(trace_id, {"spans": 0})
                    entry["spans"] += 1
                    attributes = span.get("attributes") or {}
                    if span.get("kind") == "SERVER" and attributes.get("correlation_id"):
                        entry["correlation_id"] = attributes["correlation_id"]
                        entry["route"] = attributes.get("http.route", "")
                        entry["status"] = attributes.get("http.response.status_code", "")
    return found
