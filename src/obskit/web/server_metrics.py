"""The seam to the HTTP server RED recorder (``obskit.metrics.http``), absent until it is built."""

from __future__ import annotations

import importlib
from typing import Protocol

__all__ = ["ServerMetrics", "server_metrics"]


class ServerMetrics(Protocol):
    """What the middleware records per request (see ``obskit.metrics.http``)."""

    def request_started(self, method: str) -> None:
        """A request began (active requests)."""

    def request_finished(
        self,
        method: str,
        route: str,
        status: int,
        error_type: str,
        duration_s: float,
        *,
        tenant: str | None = None,
        trace_id: int | None = None,
        ttfb_s: float | None = None,
    ) -> None:
        """A request ended: duration, count, errors by route."""


def server_metrics() -> ServerMetrics | None:
    """The live recorder, or None before ``init()``, with metrics off, or without the module."""
    try:
        module = importlib.import_module("obskit.metrics.http")
    except ImportError:
        return None
    recorder: ServerMetrics | None = module.server_metrics()
    return recorder
