"""What both middlewares do around one request: ids, context, span, then RED, span end and log.

:class:`RequestPlan` is built once per obskit configuration (``init()``) and holds every choice
that does not depend on the request; :class:`Exchange` is one request's state. The ASGI and WSGI
middlewares only translate their protocol into calls on these two.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextvars import Token
from time import perf_counter as _perf
from time import time_ns as _time_ns
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from obskit import _caches, _guard, _live, context
from obskit._otel_context import enter as _enter
from obskit._otel_context import enter_span as _enter_span
from obskit._otel_context import leave as _leave
from obskit._semconv import method_label as _method_label
from obskit.context import pop as _pop
from obskit.context import push as _push
from obskit.logs import redaction
from obskit.logs.server_errors import note_request_error
from obskit.metrics import flags as _flags
from obskit.metrics.flags import current as _flags_noted
from obskit.metrics.http import HttpServerMetrics, server_metrics
from obskit.tracing.api import get_tracer
from obskit.tracing.server_span import ServerSpan, start_server_span
from obskit.web.access_log import AccessLog, QueryRedactor
from obskit.web.routes import UNMATCHED
from obskit.web.streams import StreamMetrics, stream_metrics

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = [
    "CLIENT_CLOSED",
    "Exchange",
    "RequestPlan",
    "current_plan",
]

CLIENT_CLOSED: Final = 499  # nginx's convention: the client went away before the response ended

_ERROR = Status(StatusCode.ERROR)


_serials = itertools.count(1)


class RequestPlan:
    """The request-independent choices for the current configuration."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        # Tells a middleware that this is a new configuration (it keeps what it derives from a
        # plan under the plan's serial, never the plan itself: see obskit._caches).
        self.serial = next(_serials)
        self.id_headers: tuple[str, ...] = settings.request_id_headers
        self.echo_header = settings.request_id_headers[0] if settings.request_id_headers else None
        self.tenant_header = settings.tenant_header.lower() if settings.tenant_header else None
        tenant_from = settings.extras.get("tenant_from")
        self.tenant_from: Callable[[Any], Any] | None = tenant_from
        tracer = get_tracer() if settings.tracing else None
        # A no-op tracer still costs a span object per request: skip it altogether.
        self.tracer = None if isinstance(tracer, trace.NoOpTracer) else tracer
        self.access_log = AccessLog() if settings.access_log else None
        self.metrics: HttpServerMetrics | None = server_metrics() if settings.metrics else None
        self.streams: StreamMetrics | None = stream_metrics() if settings.metrics else None
        self.redact_query = QueryRedactor(redaction.for_settings(settings))
        # Requests left out of RED, traces and the access log (``exclude``), decided here once:
        # exact paths (also with or without one trailing slash) are looked up when a request
        # arrives; every entry is also matched against the route the framework matched.
        excluded = settings.exclude
        self.excluded_paths: frozenset[str] = frozenset(
            variant
            for entry in excluded
            if not _is_template(entry)
            for variant in (entry, entry.rstrip("/") or "/", entry.rstrip("/") + "/")
        )
        self.excluded_routes: frozenset[str] = frozenset(excluded)

    def tenant_of(self, carrier: Any, header_value: str | None) -> str | None:
        """The tenant from the user's callable (given the scope or environ), else the header."""
        if self.tenant_from is not None:
            try:
                value = self.tenant_from(carrier)
            except Exception as exc:
                # The user's callable failed, not obskit: count it, serve the request.
                _guard.report("web.tenant_from", exc)
                value = None
            if value is not None:
                return context.clean_id(str(value))
        return context.clean_id(header_value) if header_value is not None else None


def _is_template(entry: str) -> bool:
    """Whether an ``exclude`` entry has route parameters (Starlette, Flask, Django syntax)."""
    return "{" in entry or "<" in entry


def _live_plan() -> RequestPlan | None:
    runtime = _live.runtime
    if runtime is None or runtime.disabled:
        return None
    return RequestPlan(runtime)


#: The plan for the live configuration (rebuilt after ``init()``); None when obskit is off, and
#: when building it failed (counted): the request is served without obskit rather than not at all.
current_plan = _caches.Slot(_live_plan, "web.plan").get


class Exchange:
    """One request between :meth:`begin` and :meth:`finish`."""

    __slots__ = (
        "client",
        "correlation_id",
        "counted",
        "ctx_token",
        "fields",
        "method",
        "method_label",
        "otel_token",
        "path",
        "plan",
        "query",
        "quiet",
        "scheme",
        "span",
        "started",
        "tenant_id",
    )

    def __init__(
        self, plan: RequestPlan, method: str, path: str, query: str, scheme: str = "http"
    ) -> None:
        self.plan = plan
        self.method = method
        self.scheme = scheme  # as the server reported it; the metrics bound its label values
        self.method_label = _method_label(method)
        self.path = path
        self.query = query
        self.started = _perf()
        self.span: Any = None
        self.otel_token: Token[Any] | None = None
        self.ctx_token: Token[dict[str, Any]] | None = None
        self.fields: dict[str, Any] = {}
        self.correlation_id = ""
        self.tenant_id: str | None = None
        self.client: str | None = None
        # An excluded request: ids and context as usual, nothing recorded (see begin, finish).
        self.quiet = path in plan.excluded_paths
        self.counted = True  # in the in-flight gauge (a WebSocket session is not)

    def begin(
        self,
        correlation_id: str | None,
        tenant_id: str | None,
        parent: otel_context.Context | None,
        attributes: dict[str, Any],
        *,
        counted: bool = True,
    ) -> None:
        """Bind ids to the context and start the SERVER span (as the current span)."""
        plan = self.plan
        if not counted:
            self.counted = False
        cid = self.correlation_id = correlation_id or context.new_id()
        self.tenant_id = tenant_id
        fields = {context.CORRELATION_ID: cid}
        if tenant_id is not None:
            fields[context.TENANT_ID] = tenant_id
        self.fields = fields
        self.ctx_token = _push(fields)
        if self.quiet:
            if parent is not None:
                self.otel_token = _enter(parent)  # outbound calls still carry the caller's trace
            return
        tracer = plan.tracer
        if tracer is not None:
            attributes["correlation_id"] = cid
            if tenant_id is not None:
                attributes["tenant_id"] = tenant_id
            span = self.span = start_server_span(tracer, self.method_label, parent, attributes)
            self.otel_token = _enter_span(span, parent)
        elif parent is not None:
            # No spans of our own, but the caller's trace and baggage still flow to outbound calls.
            self.otel_token = _enter(parent)
        metrics = plan.metrics
        if metrics is not None and counted:
            metrics.request_started(self.method_label, self.scheme)

    def finish(
        self,
        status: int,
        route: str,
        error: BaseException | None,
        error_type: str,
        ended: float,
        first_byte: float | None,
        body_bytes: int,
        *,
        stream: str | None = None,
        stream_route: str | None = None,
    ) -> None:
        """Record the outcome (span, access line, RED), then leave the request's context.

        ``stream`` names a long-lived stream (``"sse"``, ``"websocket"``) opened under
        ``stream_route``: its life is recorded in the stream families. An SSE response counts as a
        request up to its first byte; a WebSocket session is not a request at all.
        """
        plan = self.plan
        if self.quiet or route in plan.excluded_routes:
            self.forget()
            return
        duration = ended - self.started
        ttfb = first_byte - self.started if first_byte is not None else None
        span = self.span
        trace_id: int | None = None
        try:
            if type(span) is ServerSpan and error is None and not error_type:
                # The common outcome on obskit's own span: its fields directly, as its setters
                # would (four calls cost more than the work they do).
                attributes = span._attributes
                if status:
                    attributes["http.response.status_code"] = status
                if route is not UNMATCHED:
                    span._name = f"{self.method_label} {route}"
                    attributes["http.route"] = route
                trace_id = span._context[0]  # type: ignore[index]  # always sampled
            elif span is not None:
                # One set_attributes call: each SDK call takes the span's lock.
                final: dict[str, Any] = {"http.response.status_code": status} if status else {}
                if route is not UNMATCHED:
                    span.update_name(f"{self.method_label} {route}")
                    final["http.route"] = route
                if error is not None:
                    span.record_exception(error)
                if error_type:
                    final["error.type"] = error_type
                    span.set_status(_ERROR)
                span.set_attributes(final)
                span_context = span.get_span_context()
                if span_context.trace_flags.sampled:
                    trace_id = span_context.trace_id
            access_log = plan.access_log
            if access_log is not None:
                path = self.path
                if self.query:
                    path = f"{path}?{self.query}"  # the access line redacts it
                access_log.write(
                    self.method_label,
                    route,
                    path,
                    status,
                    duration,
                    ttfb,
                    body_bytes,
                    self.client,
                    error_type,
                    error,
                )
            if error is not None:
                # The server logs this exception again once the app returned: one line, not two.
                note_request_error(error, self.fields, span, access_log is not None)
            if span is not None:
                # Ended before RED: the trace is decided by then (unless other spans of it still
                # run), so RED's exemplar is applied or discarded at once, not held on the span.
                ending, span = span, None
                ending.end(end_time=_time_ns() - int((_perf() - ended) * 1e9))
            metrics = plan.metrics
            if metrics is not None and stream != "websocket":
                metrics.request_finished(  # positional: cheaper than keywords, per request
                    self.method_label,
                    route,
                    status,
                    error_type,
                    ttfb if (stream is not None and ttfb is not None) else duration,
                    self.scheme,
                    self.tenant_id,
                    trace_id,
                    ttfb,
                )
                # Allowed feature flags the request evaluated (usually none: one lookup).
                noted = _flags_noted()
                if noted is not None:
                    _flags.request_finished(noted, route, error_type, duration, self.tenant_id)
            streams = plan.streams
            if stream is not None and stream_route is not None and streams is not None:
                outcome = (
                    "error"
                    if error_type
                    else "client_closed"
                    if status == CLIENT_CLOSED
                    else "closed"
                )
                streams.closed(stream, stream_route, outcome, duration)
        except Exception as exc:
            _guard.report("web.finish", exc)
        finally:
            if span is not None:  # (not ended above: something failed before)
                # The span ends when the last byte left, not when background work finished.
                span.end(end_time=_time_ns() - int((_perf() - ended) * 1e9))
            self.leave()

    def forget(self) -> None:
        """End an excluded request: no access line, no RED (its in-flight count, taken before
        the route was known, is given back); its span, if one was started, is dropped with its
        trace (where the tail sampler can: a request
        whose handler started child spans is decided by the usual rules)."""
        span, self.span = self.span, None
        try:
            metrics = self.plan.metrics
            if metrics is not None and not self.quiet and self.counted:
                metrics.request_left_out(self.method_label, self.scheme)  # started in begin()
            if span is not None and not (
                type(span) is ServerSpan and span._origin.sampler.forget_server_span(span)
            ):
                span.end()
        except Exception as exc:
            _guard.report("web.finish", exc)
        finally:
            self.leave()

    def leave(self) -> None:
        """Restore the context as it was before :meth:`begin` (idempotent)."""
        if self.otel_token is not None:
            token, self.otel_token = self.otel_token, None
            _leave(token)
        if self.ctx_token is not None:
            ctx_token, self.ctx_token = self.ctx_token, None
            _pop(ctx_token)
