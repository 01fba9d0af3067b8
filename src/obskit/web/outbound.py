"""Outbound HTTP (httpx sync and async, requests): propagation, CLIENT spans, dependency RED.

Each call carries ``traceparent``, ``tracestate``, ``baggage`` and the correlation id header, gets
a CLIENT span and is counted in ``http_client_request_duration_seconds`` by ``server_address``,
method and status: a dependency slowing down or failing shows there first.

The OpenTelemetry contrib instrumentations would add the span but neither obskit's correlation
header, its W3C-strict formatting nor a Prometheus histogram, so this module wraps the clients'
public ``send`` methods itself, with ``wrapt`` (:mod:`obskit._patching`): it composes with other
instrumentations of the same clients (OpenTelemetry's httpx instrumentation wraps the transport
beneath ``send``; its span becomes a child of obskit's, and its ``traceparent`` replaces obskit's,
so the wire carries one). :func:`install`'s returned callable undoes the wrapping without
disturbing wrappers that others put on before or after obskit's.

A call made while OpenTelemetry's suppress-instrumentation key is set (an exporter's own POST,
obskit's own calls under :func:`obskit._selfcalls.quiet`) is passed straight through: no span, no
metric, no header. That is one context lookup per call.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit import _guard, _live, _locks, _patching, context
from obskit._selfcalls import suppressed
from obskit._semconv import error_type, status_error_type
from obskit._semconv import method_label as _method_label
from obskit.metrics import catalogue
from obskit.tracing.api import get_tracer
from obskit.web.propagation import format_baggage, format_traceparent, format_tracestate

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = ["ClientRecorder", "install", "outbound_headers"]

MAX_SERVERS: Final = 200  # distinct server addresses with their own label; the rest: __other__
OTHER: Final = "__other__"
_CLIENT = SpanKind.CLIENT
_ERROR = Status(StatusCode.ERROR)
_perf = time.perf_counter


class ClientRecorder:
    """``http_client_request_duration_seconds`` with its label children cached and bounded."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.histogram = store.declare(catalogue.HTTP_CLIENT_DURATION)
        # Bounded: at most MAX_SERVERS addresses (plus __other__) times methods, statuses, errors.
        self._children: dict[tuple[str, str, int, str], Any] = {}
        self._servers: set[str] = {OTHER}
        self._lock = _locks.lock()

    def observe(
        self, server: str, method: str, status: int, error_type: str, seconds: float
    ) -> None:
        """Record one outbound call."""
        if server not in self._servers:
            server = self._admit(server)
        key = (server, method, status, error_type)
        child = self._children.get(key)
        if child is None:
            child = self.histogram.labels(server, method, str(status) if status else "", error_type)
            self._children[key] = child
        child.observe(seconds)

    def _admit(self, server: str) -> str:
        with self._lock:
            if len(self._servers) < MAX_SERVERS:
                self._servers.add(server)
                return server
        # Counted in obskit_label_overflow_total{label="server_address"}.
        self._store.overflowed("server_address")
        return OTHER


def outbound_headers(headers: MutableMapping[str, Any], echo_header: str | None) -> None:
    """Add W3C trace context, baggage and the correlation id to ``headers`` (kept if present)."""
    span_context = trace.get_current_span().get_span_context()
    # A traceparent the caller set on purpose (a proxy forwarding one) is left as it is.
    if span_context.is_valid and "traceparent" not in headers:
        headers["traceparent"] = format_traceparent(span_context)
        state = span_context.trace_state
        if state:
            headers["tracestate"] = format_tracestate(state)
    entries = otel_baggage.get_all()
    if entries and "baggage" not in headers:
        value = format_baggage(entries)
        if value:
            headers["baggage"] = value
    if echo_header:
        cid = context.fields().get(context.CORRELATION_ID)
        if cid and echo_header not in headers:
            headers[echo_header] = cid


class _Calls:
    """Span + propagation + metrics around one outbound call; shared by all patched clients."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.echo = settings.request_id_headers[0] if settings.request_id_headers else None
        store = _live.metrics_store() if settings.metrics else None
        self.recorder = ClientRecorder(store) if store is not None else None
        self.tracing = settings.tracing

    def start(self, method: str, host: str, port: int | None, url: str) -> tuple[Any, Any, float]:
        method_label = _method_label(method)
        span = token = None
        if self.tracing:
            tracer = get_tracer()
            if not isinstance(tracer, trace.NoOpTracer):
                attributes: dict[str, Any] = {
                    "http.request.method": method_label,
                    "server.address": host,
                    "url.full": url,
                }
                if port is not None:
                    attributes["server.port"] = port
                span = tracer.start_span(method_label, kind=_CLIENT, attributes=attributes)
                token = otel_context.attach(trace.set_span_in_context(span))
        return span, token, _perf()

    def end(
        self,
        started: tuple[Any, Any, float],
        method: str,
        server: str,
        status: int,
        error: BaseException | None,
    ) -> None:
        span, token, t0 = started
        seconds = _perf() - t0
        method_label = _method_label(method)
        # semconv: the exception's type, else a failed status (for a client, 4xx too).
        failure = error_type(error) if error is not None else status_error_type(status, client=True)
        try:
            if self.recorder is not None:
                self.recorder.observe(server, method_label, status, failure, seconds)
            if span is not None:
                if status:
                    span.set_attribute("http.response.status_code", status)
                if error is not None:
                    span.record_exception(error)
                if failure:
                    span.set_attribute("error.type", failure)
                    span.set_status(_ERROR)
        except Exception as exc:
            _guard.report("web.outbound", exc)
        finally:
            if token is not None:
                otel_context.detach(token)
            if span is not None:
                span.end()


def _url_parts(url: Any) -> tuple[str, int | None, str]:
    """Host, port and a query-free URL from an ``httpx.URL``."""
    host = str(url.host)
    port = url.port
    return host, port, f"{url.scheme}://{host}{':' + str(port) if port else ''}{url.path}"


def _request_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The request a client's ``send(request, **options)`` was called with."""
    return args[0] if args else kwargs["request"]


def _patch_httpx(calls: _Calls) -> Callable[[], None]:
    import httpx

    def send(
        wrapped: Callable[..., httpx.Response], instance: httpx.Client, args: Any, kwargs: Any
    ) -> httpx.Response:
        if suppressed():
            return wrapped(*args, **kwargs)
        try:
            request = _request_of(args, kwargs)
            host, port, url = _url_parts(request.url)
            started = calls.start(request.method, host, port, url)
            outbound_headers(request.headers, calls.echo)
        except Exception as exc:
            _guard.report("web.outbound", exc)
            return wrapped(*args, **kwargs)
        server = f"{host}:{port}" if port else host
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            calls.end(started, request.method, server, 0, exc)
            raise
        calls.end(started, request.method, server, response.status_code, None)
        return response

    async def async_send(
        wrapped: Callable[..., Awaitable[httpx.Response]],
        instance: httpx.AsyncClient,
        args: Any,
        kwargs: Any,
    ) -> httpx.Response:
        if suppressed():
            return await wrapped(*args, **kwargs)
        try:
            request = _request_of(args, kwargs)
            host, port, url = _url_parts(request.url)
            started = calls.start(request.method, host, port, url)
            outbound_headers(request.headers, calls.echo)
        except Exception as exc:
            _guard.report("web.outbound", exc)
            return await wrapped(*args, **kwargs)
        server = f"{host}:{port}" if port else host
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            calls.end(started, request.method, server, 0, exc)
            raise
        calls.end(started, request.method, server, response.status_code, None)
        return response

    undo_sync = _patching.wrap(httpx.Client, "send", send)
    try:
        undo_async = _patching.wrap(httpx.AsyncClient, "send", async_send)
    except BaseException:
        undo_sync()
        raise

    def undo() -> None:
        undo_async()
        undo_sync()

    return undo


def _patch_requests(calls: _Calls) -> Callable[[], None]:
    import requests
    from urllib3.util import parse_url

    def send(
        wrapped: Callable[..., requests.Response],
        instance: requests.Session,
        args: Any,
        kwargs: Any,
    ) -> requests.Response:
        if suppressed():
            return wrapped(*args, **kwargs)
        try:
            request = _request_of(args, kwargs)
            method = request.method or "GET"
            parsed = parse_url(request.url or "")
            host = parsed.host or ""
            port = parsed.port
            url = f"{parsed.scheme}://{host}{':' + str(port) if port else ''}{parsed.path or ''}"
            started = calls.start(method, host, port, url)
            outbound_headers(request.headers, calls.echo)
        except Exception as exc:
            _guard.report("web.outbound", exc)
            return wrapped(*args, **kwargs)
        server = f"{host}:{port}" if port else host
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            calls.end(started, method, server, 0, exc)
            raise
        calls.end(started, method, server, response.status_code, None)
        return response

    return _patching.wrap(requests.Session, "send", send)


def _installed(module: str) -> bool:
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install(runtime: Runtime) -> Callable[[], None]:
    """Instrument the HTTP clients that are installed; returns the function that undoes it."""
    calls = _Calls(runtime)
    undos: list[Callable[[], None]] = []
    for module, patch in (("httpx", _patch_httpx), ("requests", _patch_requests)):
        if _installed(module):
            try:
                undos.append(patch(calls))
            except Exception as exc:
                _guard.report("web.outbound", exc)

    def uninstall() -> None:
        while undos:
            undos.pop()()

    return uninstall
