"""``ASGIMiddleware``: ids, context, SERVER span, RED and an access line for every HTTP request.

Pure ASGI (never ``BaseHTTPMiddleware``): the application runs in this coroutine's context, so the
correlation id, tenant and span it binds are visible to every handler, and reset by token when the
request ends. The request body is never read: ``receive`` is only watched for a disconnect.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from obskit import _guard, context
from obskit.metrics.use.event_loop import ensure_monitor as ensure_loop_monitor
from obskit.web import propagation
from obskit.web.access_log import take_over_server_logs
from obskit.web.exchange import (
    CLIENT_CLOSED,
    KNOWN_METHODS,
    Exchange,
    RequestPlan,
    current_plan,
    error_type_of,
)
from obskit.web.routes import RecordingScope, asgi_route, attach_django
from obskit.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIMiddleware"]

_perf = time.perf_counter  # the exchange's clock
_TRACEPARENT: Final = 1
_TRACESTATE: Final = 2
_BAGGAGE: Final = 3
_USER_AGENT: Final = 4
_TENANT: Final = 5
_ID: Final = 6  # and up: request id headers, in configured order of preference
_EVENT_STREAM: Final = b"text/event-stream"
_OBSERVED: Final = "obskit.observed"


class _Names:
    """Header names of one plan as ASGI bytes, computed once per configuration."""

    def __init__(self, plan: RequestPlan) -> None:
        self.generation = plan.generation
        slots: dict[bytes, int] = {
            b"traceparent": _TRACEPARENT,
            b"tracestate": _TRACESTATE,
            b"baggage": _BAGGAGE,
            b"user-agent": _USER_AGENT,
        }
        if plan.tenant_header:
            slots[plan.tenant_header.encode("latin-1")] = _TENANT
        for index, name in enumerate(plan.id_headers):
            slots.setdefault(name.encode("latin-1"), _ID + index)
        self.slots = slots
        self.echo = plan.echo_header.encode("latin-1") if plan.echo_header else None


class _Response:
    """What the application sent so far."""

    __slots__ = (
        "body_bytes",
        "complete",
        "disconnected",
        "ended",
        "first_byte",
        "status",
        "stream",
        "stream_route",
    )

    def __init__(self) -> None:
        self.status = 0
        self.first_byte: float | None = None
        self.ended: float | None = None
        self.body_bytes = 0
        self.complete = False
        self.disconnected = False
        self.stream = False
        self.stream_route: str | None = None


class ASGIMiddleware:
    """Wrap an ASGI application: ``app = obskit.ASGIMiddleware(app)``.

    Works before and after ``obskit.init()`` (it follows the live configuration) and passes
    ``lifespan`` and unknown scope types through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._names: _Names | None = None
        self._adopted = -1
        try:
            attach_django(app)
        except Exception as exc:
            _guard.report("web.routes", exc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application for one connection scope."""
        scope_type = scope["type"]
        if scope_type == "http":
            # The loop-lag monitor must run in the server's own loop: start it from inside.
            ensure_loop_monitor()
            plan = current_plan()
            if plan is not None and _OBSERVED not in scope:
                await self._http(plan, scope, receive, send)
                return
        elif scope_type == "websocket":
            plan = current_plan()
            if plan is not None and _OBSERVED not in scope:
                await self._websocket(plan, scope, receive, send)
                return
        elif scope_type == "lifespan":
            # Servers (re)configure their loggers before startup; take them over again now.
            plan = current_plan()
            if plan is not None:
                self._adopt(plan)
        await self.app(scope, receive, send)

    def _adopt(self, plan: RequestPlan) -> None:
        if self._adopted == plan.generation:
            return
        self._adopted = plan.generation
        try:
            take_over_server_logs(plan.access_log is not None)
        except Exception as exc:
            _guard.report("web.adopt_loggers", exc)

    def _begin(
        self, plan: RequestPlan, scope: Scope, counted: bool = True
    ) -> tuple[Exchange, RecordingScope, bytes]:
        names = self._names
        if names is None or names.generation != plan.generation:
            names = self._names = _Names(plan)
        if self._adopted != plan.generation:
            self._adopt(plan)
        method: str = scope.get("method", "GET")  # a websocket scope has no method
        query: str = scope.get("query_string", b"").decode("latin-1")
        exchange = Exchange(plan, method, scope.get("path", ""), query)
        slots = names.slots
        traceparents: list[str] = []
        tracestates: list[str] = []
        baggages: list[str] = []
        user_agent: bytes | None = None
        tenant_raw: bytes | None = None
        best_id: str | None = None
        best_slot = 1 << 30
        for name, value in scope.get("headers", ()):
            slot = slots.get(name)
            if slot is None:
                continue
            if slot >= _ID:
                if slot < best_slot:
                    candidate = context.clean_id(value)
                    if candidate is not None:
                        best_id, best_slot = candidate, slot
            elif slot == _TRACEPARENT:
                traceparents.append(value.decode("latin-1"))
            elif slot == _TRACESTATE:
                tracestates.append(value.decode("latin-1"))
            elif slot == _BAGGAGE:
                baggages.append(value.decode("latin-1"))
            elif slot == _USER_AGENT:
                user_agent = value
            elif tenant_raw is None:
                tenant_raw = value
        client = scope.get("client")
        if client:
            exchange.client = str(client[0])
        parent = None
        if traceparents or baggages:
            parent = propagation.remote_context(traceparents, tracestates, baggages)
        attributes: dict[str, Any] = {}
        if plan.tracer is not None:
            attributes = {
                "http.request.method": exchange.method_label,
                "url.path": exchange.path,
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
            }
            if method not in KNOWN_METHODS:
                attributes["http.request.method_original"] = method[:64]
            if query:
                attributes["url.query"] = plan.redact_query(query)
            if exchange.client is not None:
                attributes["client.address"] = exchange.client
            if user_agent is not None:
                attributes["user_agent.original"] = user_agent[:512].decode("latin-1")
        tenant = plan.tenant_of(
            scope, tenant_raw.decode("latin-1") if tenant_raw is not None else None
        )
        exchange.begin(best_id, tenant, parent, attributes, counted=counted)
        inner = RecordingScope(scope)
        # A second ASGIMiddleware further in (a wrapped sub-application) must not count the
        # request twice.
        dict.__setitem__(inner, _OBSERVED, True)
        if plan.tracer is not None:
            # FastAPI's native telemetry starts its own SERVER span (a new trace, parented from
            # the headers, not from obskit's span) once a global tracer provider exists. This is
            # FastAPI's own marker for "already observed": the request gets one SERVER span.
            dict.setdefault(inner, "fastapi.telemetry", None)
        return exchange, inner, names.echo or b""

    async def _http(self, plan: RequestPlan, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            exchange, inner_scope, echo = self._begin(plan, scope)
        except Exception as exc:
            _guard.report("web.asgi", exc)
            await self.app(scope, receive, send)
            return
        state = _Response()
        echo_value = exchange.correlation_id.encode("ascii")

        async def send_wrapper(message: Message) -> None:
            message_type = message["type"]
            if message_type == "http.response.body":
                body = message.get("body")
                if body:
                    state.body_bytes += len(body)
                if not message.get("more_body", False):
                    state.ended = _perf()
                    state.complete = True
            elif message_type == "http.response.start":
                state.first_byte = _perf()
                state.status = message["status"]
                message = _with_echo(message, echo, echo_value, state)
                if state.stream:
                    _stream_opened(plan, "sse", inner_scope, state, self.app)
            await send(message)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                state.disconnected = True
            return message

        error: BaseException | None = None
        try:
            await self.app(inner_scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish(exchange, inner_scope, state, error, self.app)

    async def _websocket(
        self, plan: RequestPlan, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            exchange, inner_scope, _ = self._begin(plan, scope, counted=False)
        except Exception as exc:
            _guard.report("web.asgi", exc)
            await self.app(scope, receive, send)
            return
        state = _Response()
        state.stream = True

        async def send_wrapper(message: Message) -> None:
            message_type = message["type"]
            if message_type == "websocket.accept":
                state.status = 101
                state.first_byte = _perf()
                _stream_opened(plan, "websocket", inner_scope, state, self.app)
            elif message_type == "websocket.close":
                state.complete = True
                state.ended = _perf()
                if not state.status:
                    state.status = 403  # closed before accepting: the handshake was refused
            await send(message)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and not state.complete:
                state.disconnected = True
                state.complete = True
                state.ended = _perf()
            return message

        error: BaseException | None = None
        try:
            await self.app(inner_scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish(exchange, inner_scope, state, error, self.app, kind="websocket")


def _stream_opened(plan: RequestPlan, kind: str, scope: Scope, state: _Response, app: Any) -> None:
    try:
        streams = plan.streams
        if streams is not None:
            route = state.stream_route = asgi_route(scope, state.status, app)
            streams.opened(kind, route)
    except Exception as exc:
        _guard.report("web.streams", exc)


def _with_echo(message: Message, echo: bytes, value: bytes, state: _Response) -> Message:
    """The start message with the correlation id header added (a copy: the app owns its list)."""
    headers = message.get("headers") or ()
    has_echo = False
    for name, header_value in headers:
        lower = name.lower()
        if lower == echo:
            has_echo = True
        elif lower == b"content-type" and header_value.startswith(_EVENT_STREAM):
            state.stream = True
    if has_echo or not echo:
        return message
    new = dict(message)
    new["headers"] = [*headers, (echo, value)]
    return new


def _is_disconnect(error: BaseException) -> bool:
    if isinstance(error, (asyncio.CancelledError, ConnectionError)):
        return True
    # Starlette raises its own ClientDisconnect (an OSError subclass in some versions).
    return type(error).__name__ == "ClientDisconnect"


def _finish(
    exchange: Exchange,
    scope: Scope,
    state: _Response,
    error: BaseException | None,
    app: Any,
    kind: str = "sse",
) -> None:
    try:
        status = state.status
        error_type = ""
        if error is not None:
            if not state.complete and (state.disconnected or _is_disconnect(error)):
                status, error = CLIENT_CLOSED, None
            elif not state.complete or status >= 500:
                # (An error page already sent, as Starlette's ServerErrorMiddleware does, still
                # names the exception; work failing after a successful response does not.)
                error_type = error_type_of(error)
                if not status:
                    status = 500
        elif not state.complete:
            # The app returned without finishing its response: the client went away, or the
            # server answers 500 for it.
            if state.disconnected:
                status = CLIENT_CLOSED
            elif not status:
                status = 500
        if status >= 500 and not error_type:
            error_type = str(status)
        route = asgi_route(scope, status, app)
        ended = state.ended if state.ended is not None else _perf()
    except Exception as exc:
        _guard.report("web.asgi", exc)
        exchange.leave()
        return
    exchange.finish(
        status,
        route,
        error,
        error_type,
        ended,
        state.first_byte,
        state.body_bytes,
        stream=kind if state.stream else None,
        stream_route=state.stream_route,
    )
