"""``WSGIMiddleware``: the ASGI middleware's semantics for WSGI servers (gunicorn sync/gthread).

The request ends when its body ends: the iterable is exhausted, or the last byte of its
``Content-Length`` is handed to the server, or the server closes the iterable, whichever comes
first (see :class:`ResponseBody`); a streamed body is timed to the end of its transmission. The
whole request (the application call, each body chunk, the closing) runs in one copy of the
worker thread's context, taken when the request arrives: whatever the application sets there, by
token or not (``obskit.bind``, structlog's ``bind_contextvars``, its own context variables), is
never seen by the next request the thread serves.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from obskit import _guard, context
from obskit._semconv import KNOWN_METHODS
from obskit.web import propagation
from obskit.web.access_log import take_over_server_logs
from obskit.web.exchange import Exchange, RequestPlan, current_plan
from obskit.web.outcome import outcome
from obskit.web.routes import attach_django, attach_flask, flask_route, wsgi_route
from obskit.web.types import Environ, ExcInfo, StartResponse, WSGIApp

__all__ = [
    "HeaderKeys",
    "ResponseBody",
    "ResponseState",
    "WSGIMiddleware",
    "begin_exchange",
    "finish_response",
]

_perf = time.perf_counter
_OBSERVED = "obskit.observed"


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class HeaderKeys:
    """The environ keys of one plan's headers, computed once per configuration (per plan)."""

    def __init__(self, plan: RequestPlan) -> None:
        self.serial = plan.serial  # (not the plan: see RequestPlan.serial)
        self.ids = tuple(_environ_key(name) for name in plan.id_headers)
        self.tenant = _environ_key(plan.tenant_header) if plan.tenant_header else None
        self.echo = plan.echo_header


class ResponseState:
    """What the server and the application did with one response so far."""

    __slots__ = (
        "body_bytes",
        "client_gone",
        "complete",
        "content_length",
        "ended",
        "finished",
        "first_byte",
        "pulled",
        "route",
        "status",
    )

    def __init__(self) -> None:
        self.status = 0
        self.first_byte: float | None = None
        self.ended: float | None = None
        self.body_bytes = 0
        self.content_length = -1  # unknown
        self.complete = False  # the last byte was handed to the server
        self.pulled = False  # the server took a chunk
        self.client_gone = False
        self.finished = False  # recorded (exactly once)
        self.route: str | None = None

    def handed(self, chunk: bytes) -> bool:
        """Note a chunk of the body the server took; True if it was the last one (the bytes
        reached the response's ``Content-Length``): the request is over, finish it now."""
        self.pulled = True
        size = self.body_bytes = self.body_bytes + len(chunk)
        if size >= self.content_length >= 0:
            # The last byte is handed over: what the client does next is not the app's.
            self.complete = True
            return True
        return False


class WSGIMiddleware:
    """Wrap a WSGI application: ``app.wsgi_app = obskit.WSGIMiddleware(app.wsgi_app)``."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self._keys: HeaderKeys | None = None
        try:
            attach_django(app) or attach_flask(app)
        except Exception as exc:
            _guard.report("web.routes", exc)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        plan = current_plan()
        if plan is None or _OBSERVED in environ:
            return self.app(environ, start_response)
        # The request's own context: a thread serves request after request in one context, and
        # what a handler binds without a token (structlog's bind_contextvars) would outlive it.
        # Entering a Context is one C call; the thread's own context is never changed.
        request_context = contextvars.copy_context()
        run = request_context.run
        try:
            environ[_OBSERVED] = True  # an inner WSGIMiddleware passes this request through
            keys = self._keys
            if keys is None or keys.serial != plan.serial:  # a new configuration
                take_over_server_logs(plan.access_log is not None)
                keys = self._keys = HeaderKeys(plan)
            exchange = run(begin_exchange, plan, keys, environ, environ)
        except Exception as exc:
            _guard.report("web.wsgi", exc)
            return self.app(environ, start_response)
        state = ResponseState()
        keys = self._keys
        echo = keys.echo if keys is not None else None

        def start_wrapper(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            try:
                state.status = int(status[:3])
                state.first_byte = _perf()
                # Flask forgets its request when the app returns; its rule is readable now.
                state.route = flask_route(environ)
                has_echo = not echo
                for name, value in headers:
                    lower = name.lower()
                    if lower == echo:
                        has_echo = True
                    elif lower == "content-length":
                        state.content_length = int(value) if value.isdigit() else -1
                if not has_echo and echo:
                    headers = [*headers, (echo, exchange.correlation_id)]
            except Exception as exc:
                _guard.report("web.wsgi", exc)
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        try:
            body = run(self.app, environ, start_wrapper)
        except BaseException as exc:
            run(finish_response, exchange, environ, state, exc)
            raise
        # The body runs later, in pieces, maybe after other requests on this thread: every piece
        # runs in the request's context too, and what a piece sets persists to the next (Flask's
        # stream_with_context pushes its request context at the first chunk and pops it after
        # the last).
        return ResponseBody(body, exchange, environ, state, request_context)


def begin_exchange(
    plan: RequestPlan, keys: HeaderKeys, environ: Environ, carrier: Environ
) -> Exchange:
    """Start the exchange of the request described by ``environ`` (a WSGI environ, or Django's
    ``request.META``); ``carrier`` is what ``tenant_from`` is given (the environ or scope)."""
    method: str = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query: str = environ.get("QUERY_STRING", "")
    exchange = Exchange(plan, method, path, query, environ.get("wsgi.url_scheme", "http"))
    best_id = None
    for key in keys.ids:
        raw = environ.get(key)
        if raw is not None:
            # Values arrive as latin-1 decoded text; clean_id refuses anything not ASCII.
            best_id = context.clean_id(raw)
            if best_id is not None:
                break
    exchange.client = environ.get("REMOTE_ADDR")
    traceparent = environ.get("HTTP_TRACEPARENT")
    baggage = environ.get("HTTP_BAGGAGE")
    parent = None
    if traceparent is not None or baggage is not None:
        tracestate = environ.get("HTTP_TRACESTATE")
        parent = propagation.remote_context(
            [traceparent] if traceparent is not None else [],
            [tracestate] if tracestate is not None else [],
            [baggage] if baggage is not None else [],
        )
    attributes: dict[str, Any] = {}
    if plan.tracer is not None and not exchange.quiet:
        attributes = {
            "http.request.method": exchange.method_label,
            "url.path": path,
            "url.scheme": exchange.scheme,
            "network.protocol.version": environ.get("SERVER_PROTOCOL", "HTTP/1.1")[5:],
        }
        if method not in KNOWN_METHODS:
            attributes["http.request.method_original"] = method[:64]
        if query:
            attributes["url.query"] = plan.redact_query(query)
        if exchange.client:
            attributes["client.address"] = exchange.client
        user_agent = environ.get("HTTP_USER_AGENT")
        if user_agent:
            attributes["user_agent.original"] = user_agent[:512]
    tenant_raw = environ.get(keys.tenant) if keys.tenant else None
    exchange.begin(best_id, plan.tenant_of(carrier, tenant_raw), parent, attributes)
    return exchange


class ResponseBody:
    """The application's body iterable, timed to its last byte, finished exactly once.

    The request ends at the first of: the iterable is exhausted; the bytes handed to the server
    reach the response's ``Content-Length`` (a test client that reads the body and never calls
    ``close()``, or reads nothing, is finished there); the iterable raises; the server calls
    ``close()``. A close before the end is the client going away (``499``) when the server
    closes because a write failed (an ``OSError`` is propagating); otherwise (a test client
    closing a response it did not read) the response keeps its status.
    """

    def __init__(
        self,
        body: Iterable[bytes],
        exchange: Exchange,
        environ: Environ,
        state: ResponseState,
        request_context: contextvars.Context,
    ) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._exchange = exchange
        self._environ = environ
        self._state = state
        self._run = request_context.run
        self._error: BaseException | None = None
        self._closed = False

    def __iter__(self) -> ResponseBody:
        return self

    def __next__(self) -> bytes:
        state = self._state
        try:
            if self._iterator is None:
                self._iterator = self._run(iter, self._body)
            chunk = self._run(next, self._iterator)
        except StopIteration:
            if not state.finished:
                state.complete = True
                self._end()
            raise
        except BaseException as exc:
            self._error = exc
            if not state.finished:
                self._end()
            raise
        if not state.finished and state.handed(chunk):
            self._end()
        return chunk

    def close(self) -> None:
        """Close the application's iterable; record the request if nothing did yet."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        if not state.finished and self._error is None:
            # Closed before the end. gunicorn, waitress, werkzeug's and wsgiref's servers close
            # while the failed write's error propagates; a test client closing a response it
            # did not read (werkzeug's takes a first chunk itself) raises nothing.
            state.client_gone = isinstance(sys.exc_info()[1], OSError)
        self._run(self._close)

    def _end(self) -> None:
        self._state.ended = _perf()
        self._run(finish_response, self._exchange, self._environ, self._state, self._error)

    def _close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            if self._error is None:
                self._error = exc
            raise
        finally:
            state = self._state
            if not state.finished:
                state.ended = _perf()
                finish_response(self._exchange, self._environ, state, self._error)


def finish_response(
    exchange: Exchange, environ: Environ, state: ResponseState, error: BaseException | None
) -> None:
    """Record the request (its route read from ``environ`` or ``state``); call exactly once."""
    state.finished = True
    try:
        # A body given without start_response() was never a response.
        complete = state.complete and state.first_byte is not None
        status, error, error_type = outcome(
            state.status, complete, state.client_gone, error, environ
        )
        route = wsgi_route(environ, state.route)
        ended = state.ended if state.ended is not None else _perf()
    except Exception as exc:
        _guard.report("web.wsgi", exc)
        exchange.leave()
        return
    exchange.finish(status, route, error, error_type, ended, state.first_byte, state.body_bytes)
