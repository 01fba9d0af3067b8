"""HTTP server RED families, named by the OpenTelemetry semantic conventions.

The middleware calls :meth:`HttpServerMetrics.request_started` and
:meth:`HttpServerMetrics.request_finished` once per request. Children are cached per label tuple
(a dict lookup on the hot path); the tenant goes through the runtime's cardinality guard.

Families (declared in :mod:`obskit.metrics.catalogue`, group ``http``):
``http_server_request_duration_seconds``, ``http_server_active_requests`` and
``obskit_http_server_time_to_first_byte_seconds``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from obskit import _caches, _exemplars, _guard, _live, _locks
from obskit.metrics import catalogue
from obskit.metrics._store import Store, observe_pair
from obskit.metrics.cardinality import CardinalityGuard

__all__ = ["HttpServerMetrics", "server_metrics"]

DURATION = catalogue.HTTP_SERVER_DURATION.name
ACTIVE = catalogue.HTTP_SERVER_ACTIVE.name
TTFB = catalogue.HTTP_SERVER_TTFB.name
DURATION_LABELS = catalogue.HTTP_SERVER_DURATION.labels
# Beyond this many distinct label tuples the local lookup caches stop growing (the families
# themselves fold further label sets into __other__).
_CACHE_CAP = 10_000


class HttpServerMetrics:
    """The HTTP server families of one runtime, with per-label-tuple child caches."""

    def __init__(
        self, store: Store, tenant_guard: CardinalityGuard | None, *, exemplars: bool = True
    ) -> None:
        # A request's duration and time to first byte are recorded together: their children
        # share the store's lock, taken once per request (observe_pair).
        self._duration_family = store.declare(catalogue.HTTP_SERVER_DURATION, shared_lock=True)
        self._active_family = store.declare(catalogue.HTTP_SERVER_ACTIVE)
        self._ttfb_family = store.declare(catalogue.HTTP_SERVER_TTFB, shared_lock=True)
        self._guard = tenant_guard
        self._exemplars = exemplars
        # A finished request's label tuple -> (in-flight leave, record duration and time to first
        # byte, the duration's exemplar): one lookup finds all three.
        self._series: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self._active: dict[tuple[str, str], Any] = {}
        self._lock = _locks.lock()

    def request_started(self, method: str, scheme: str = "http") -> None:
        """One more request in flight for ``method`` (already normalised) over ``scheme``."""
        try:
            child = self._active.get((method, scheme))  # (inline: this runs for every request)
            if child is None:
                child = self._in_flight(method, scheme)
            child.enter()
        except Exception as exc:
            _guard.report("metrics.http", exc)

    def request_left_out(self, method: str, scheme: str = "http") -> None:
        """One fewer in flight, nothing recorded: a request excluded once its route was known.

        May raise: the caller (the exchange, inside its own guard) reports it."""
        self._in_flight(method, scheme).leave()

    def request_finished(
        self,
        method: str,
        route: str,
        status: int,
        error_type: str,
        duration_s: float,
        scheme: str = "http",
        tenant: str | None = None,
        trace_id: int | None = None,
        ttfb_s: float | None = None,
    ) -> None:
        """Record one finished request (and one fewer in flight).

        ``error_type`` is "" for a success, else the exception class name or the status code as
        text (semconv). ``tenant`` passes through the cardinality guard. ``trace_id`` is offered
        to the exemplar gate, which attaches it only when the trace is kept. ``scheme`` is the
        request's URL scheme as the server reported it (``url_scheme``).
        """
        try:
            tenant_value = self._guard(tenant) if (tenant and self._guard is not None) else ""
            key = (method, scheme, route, status, error_type, tenant_value)
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key)
            leave, record, exemplar = series
            leave()
            record(duration_s, ttfb_s)
            if trace_id is not None and self._exemplars:
                wants = _exemplars.wants
                if wants is None or wants(trace_id):  # (most requests' traces are dropped)
                    _exemplars.gate.offer(trace_id, partial(exemplar, duration_s, trace_id))
        except Exception as exc:
            _guard.report("metrics.http", exc)

    # --- first use of a label tuple ------------------------------------------------------------

    def _in_flight(self, method: str, scheme: str) -> Any:
        """The in-flight gauge child of ``(method, scheme)``, made on its first use."""
        child = self._active.get((method, scheme))
        if child is None:
            child = self._active_family.labels(method, _scheme_label(scheme))
            with self._lock:
                if len(self._active) < _CACHE_CAP:
                    self._active[(method, scheme)] = child
        return child

    def _new_series(self, key: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        method, scheme, route, status, error_type, tenant = key
        active = self._in_flight(method, scheme)
        duration = self._duration_family.labels(
            method, _scheme_label(scheme), route, str(status), error_type, tenant
        )
        series = (
            active.leave,
            observe_pair(duration, self._ttfb_family.labels(method, route)),
            duration.exemplar,
        )
        with self._lock:
            if len(self._series) < _CACHE_CAP:
                self._series[key] = series
        return series


def _scheme_label(raw: str) -> str:
    """A URL scheme as a bounded label value: a known scheme lower-cased, else ``_OTHER``."""
    scheme = raw.lower() if isinstance(raw, str) else ""
    return scheme if scheme in _SCHEMES else "_OTHER"


_SCHEMES = frozenset(("http", "https", "ws", "wss"))


def _live_server_metrics() -> HttpServerMetrics | None:
    component = _live.metrics()
    return component.http() if component is not None else None


#: The current runtime's HTTP server families; None before init() / when metrics are off.
server_metrics = _caches.Slot(_live_server_metrics).get
