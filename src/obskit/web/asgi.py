"""``ASGIMiddleware``: ids, context, SERVER span, RED and an access line for every HTTP request.

Pure ASGI (never ``BaseHTTPMiddleware``): the application runs in this coroutine's context, so the
correlation id, tenant and span it binds are visible to every handler, and reset by token when the
request ends. The request body is never read: ``receive`` is only watched for a disconnect.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from opentelemetry import context as otel_context

from obskit import _guard, context
from obskit._semconv import KNOWN_METHODS
from obskit.metrics.use.event_loop import ensure_monitor as ensure_loop_monitor
from obskit.web import propagation
from obskit.web.access_log import take_over_server_logs
from obskit.web.exchange import Exchange, RequestPlan, current_plan
from obskit.web.outcome import outcome
from obskit.web.routes import ROUTE_KEY, RouteReader, attach_django, metrics_mounts
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
_CONTENT_TYPE: Final = b"content-type"
_OBSERVED: Final = "obskit.observed"
# structlog's variables (None: a structlog without the registry), checked before paying for a
# snapshot: most applications never bind one.
_structlog_vars = context.STRUCTLOG_VARS
_copy_context = contextvars.copy_context


class _Prepared:
    """What the middleware derives from one plan, once per configuration: header names as bytes."""

    def __init__(self, plan: RequestPlan) -> None:
        # The plan's serial, not the plan: a middleware outlives runtimes, and must not keep a
        # shut-down one (its tracer, its sampler) alive.
        self.serial = plan.serial
        slots: dict[bytes, int] = {
            b"traceparent": _TRACEPARENT,
            b"tracestate": _TRACESTATE,
            b"baggage": _BAGGAGE,
        }
        if plan.tracer is not None:  # only a span attribute reads it
            slots[b"user-agent"] = _USER_AGENT
        if plan.tenant_header:
            slots[plan.tenant_header.encode("latin-1")] = _TENANT
        for index, name in enumerate(plan.id_headers):
            slots.setdefault(name.encode("latin-1"), _ID + index)
        self.slots = slots
        self.echo = plan.echo_header.encode("latin-1") if plan.echo_header else b""
        # Mounts of obskit's metrics app (set by the middleware): their bare path is sent on
        # with the slash the mount matches, instead of being redirected there by Starlette.
        self.mounts: dict[str, str] = {}


class _AsgiExchange(Exchange):
    """One request or WebSocket session: the exchange, its two scopes, what the app sent so far.

    The exchange itself carries the response state (class defaults, set on the instance when
    something happens) and wraps the server's ``send`` and ``receive``: one object per request.
    """

    kind = "sse"  # the stream family an event-stream response is recorded in
    status = 0
    first_byte: float | None = None
    ended: float | None = None
    body_bytes = 0
    complete = False
    disconnected = False
    stream = False
    stream_route: str | None = None
    # What structlog's variables held before the application ran (see context.restore_structlog)
    structlog_before: Any = context.NO_SNAPSHOT
    # Set by the middleware on every instance.
    routes: RouteReader
    scope: Scope  # the application's copy of ``outer``, the server's scope
    outer: Scope
    echo: bytes
    server_receive: Receive
    server_send: Send

    def open_stream(self) -> None:
        """Count a long-lived stream (SSE, WebSocket) as open under its route."""
        try:
            streams = self.plan.streams
            if streams is not None and not self.quiet:
                route = self.routes.route(self.scope, self.outer, self.status)
                if route not in self.plan.excluded_routes:
                    self.stream_route = route
                    streams.opened(self.kind, route)
        except Exception as exc:
            _guard.report("web.streams", exc)

    def done(self, error: BaseException | None) -> None:
        """Record the outcome once the application returned (or raised ``error``)."""
        try:
            status, error, error_type = outcome(
                self.status, self.complete, self.disconnected, error, self.scope
            )
            route = self.routes.route(self.scope, self.outer, status)
            ended = self.ended if self.ended is not None else _perf()
        except Exception as exc:
            _guard.report("web.asgi", exc)
            self.leave()
            self.forget_binds()
            return
        self.finish(
            status,
            route,
            error,
            error_type,
            ended,
            self.first_byte,
            self.body_bytes,
            stream=self.kind if self.stream else None,
            stream_route=self.stream_route,
        )
        if _structlog_vars or _structlog_vars is None:
            self.forget_binds()

    def send(self, message: Message) -> Awaitable[None]:
        """What the application is given as ``send`` (each kind reads its own messages)."""
        raise NotImplementedError

    def receive(self) -> Awaitable[Message]:
        """What the application is given as ``receive``."""
        raise NotImplementedError

    def forget_binds(self) -> None:
        """Undo the application's structlog binds (they have no token: finish() cannot).

        A server running each request in its own task needs none of this, but one that runs
        requests one after another in a task (httpx's ASGITransport, some test clients) would
        carry them into the next request.
        """
        try:
            context.restore_structlog(self.structlog_before)
        except Exception as exc:
            _guard.report("web.asgi", exc)


class _HttpExchange(_AsgiExchange):
    """An HTTP request, with the ``send`` and ``receive`` its application is given."""

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function returning the server's own awaitable: the application awaits that
        # directly, so no coroutine of ours is created and driven for every message.
        message_type = message["type"]
        if message_type == "http.response.body":
            body = message.get("body")
            if body:
                self.body_bytes += len(body)
            if not message.get("more_body", False):
                self.ended = _perf()
                self.complete = True
        elif message_type == "http.response.start":
            message = self._start(message)
        return self.server_send(message)

    def _start(self, message: Message) -> Message:
        """Note the status and a stream; return the message with the correlation id echoed."""
        self.first_byte = _perf()
        self.status = message["status"]
        headers = message.get("headers") or ()
        echo = self.echo
        has_echo = not echo
        for name, value in headers:
            lower = name.lower()
            if lower == echo:
                has_echo = True
            elif lower == _CONTENT_TYPE and value.startswith(_EVENT_STREAM):
                self.stream = True
        if self.stream:
            self.open_stream()
        if has_echo:
            return message
        # A copy: the application owns the message and its header list.
        echoed = dict(message)
        echoed["headers"] = [*headers, (echo, self.correlation_id.encode("ascii"))]
        return echoed

    async def receive(self) -> Message:
        message = await self.server_receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message


class _WebSocketExchange(_AsgiExchange):
    """A WebSocket session: recorded in the stream families only, never as a request."""

    kind = "websocket"
    stream = True

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "websocket.accept":
            self.status = 101
            self.first_byte = _perf()
            self.open_stream()
        elif message_type == "websocket.close":
            self.complete = True
            self.ended = _perf()
            if not self.status:
                self.status = 403  # closed before accepting: the handshake was refused
        await self.server_send(message)

    async def receive(self) -> Message:
        message = await self.server_receive()
        if message["type"] == "websocket.disconnect" and not self.complete:
            self.disconnected = True
            self.complete = True
            self.ended = _perf()
        return message


_E = TypeVar("_E", bound=_AsgiExchange)

# The scope types observed: (their exchange, counted in the in-flight gauge). A WebSocket
# session is a stream, never a request in flight; other types pass through untouched.
_SERVED: dict[str, tuple[type[_AsgiExchange], bool]] = {
    "http": (_HttpExchange, True),
    "websocket": (_WebSocketExchange, False),
}


class ASGIMiddleware:
    """Wrap an ASGI application: ``app = obskit.ASGIMiddleware(app)``.

    Works before and after ``obskit.init()`` (it follows the live configuration) and passes
    ``lifespan`` and unknown scope types through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._prepared: _Prepared | None = None
        self._routes = RouteReader(app)
        try:
            attach_django(app)
        except Exception as exc:
            _guard.report("web.routes", exc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application for one connection scope."""
        served = _SERVED.get(scope["type"])
        if served is None:
            await self._not_served(scope, receive, send)
            return
        # The loop-lag monitor must run in the server's own loop: start it from inside.
        ensure_loop_monitor()
        plan = current_plan()
        if plan is None or _OBSERVED in scope:
            await self.app(scope, receive, send)
            return
        # Every request takes this path: it is written out here rather than in a method, one
        # coroutine fewer per request.
        try:
            exchange = self._begin(served[0], plan, scope, receive, send, served[1])
        except Exception as exc:
            _guard.report("web.asgi", exc)
            await self.app(scope, receive, send)
            return
        error: BaseException | None = None
        try:
            await self.app(exchange.scope, exchange.receive, exchange.send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            exchange.done(error)

    async def _not_served(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Servers (re)configure their loggers before startup; take them over again now.
            plan = current_plan()
            if plan is not None:
                self._prepare(plan)
        await self.app(scope, receive, send)

    def _prepare(self, plan: RequestPlan) -> _Prepared:
        prepared = self._prepared = _Prepared(plan)
        try:
            take_over_server_logs(plan.access_log is not None)
        except Exception as exc:
            _guard.report("web.adopt_loggers", exc)
        prepared.mounts = metrics_mounts(self.app)
        return prepared

    def _begin(
        self,
        kind: type[_E],
        plan: RequestPlan,
        scope: Scope,
        receive: Receive,
        send: Send,
        counted: bool = True,
    ) -> _E:
        prepared = self._prepared
        if prepared is None or prepared.serial != plan.serial:
            prepared = self._prepare(plan)
        method: str = scope.get("method", "GET")  # a websocket scope has no method
        query_bytes: bytes = scope.get("query_string", b"")
        query = query_bytes.decode("latin-1") if query_bytes else ""
        exchange = kind(plan, method, scope.get("path", ""), query, scope.get("scheme", "http"))
        exchange.outer = scope
        exchange.server_receive = receive
        exchange.server_send = send
        exchange.routes = self._routes
        exchange.echo = prepared.echo
        slots = prepared.slots
        # W3C headers in arrival order; most requests carry none, so the list is made on demand.
        w3c: list[tuple[int, bytes]] | None = None
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
            elif slot <= _BAGGAGE:
                if w3c is None:
                    w3c = []
                w3c.append((slot, value))
            elif slot == _USER_AGENT:
                user_agent = value
            elif tenant_raw is None:
                tenant_raw = value
        client = scope.get("client")
        if client:
            exchange.client = str(client[0])
        parent = _remote_parent(w3c) if w3c is not None else None
        attributes: dict[str, Any] = {}
        if plan.tracer is not None and not exchange.quiet:
            attributes = {
                "http.request.method": exchange.method_label,
                "url.path": exchange.path,
                "url.scheme": exchange.scheme,
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
        tenant = None
        if tenant_raw is not None or plan.tenant_from is not None:
            tenant = plan.tenant_of(
                scope, tenant_raw.decode("latin-1") if tenant_raw is not None else None
            )
        inner = exchange.scope = self._routes.scope(scope)
        # A second ASGIMiddleware further in (a wrapped sub-application) must not count the
        # request twice.
        inner[_OBSERVED] = True
        mounts = prepared.mounts
        if mounts:
            self._to_mount(mounts, scope, inner)
        if plan.tracer is not None:
            # FastAPI's native telemetry starts its own SERVER span (a new trace, parented from
            # the headers, not from obskit's span) once a global tracer provider exists. This is
            # FastAPI's own marker for "already observed": the request gets one SERVER span.
            dict.setdefault(inner, "fastapi.telemetry", None)
        if _structlog_vars:
            exchange.structlog_before = _copy_context()
        elif _structlog_vars is None:
            exchange.structlog_before = context.structlog_snapshot()
        # Last: from here on the context is entered, and done() must run to leave it.
        exchange.begin(best_id, tenant, parent, attributes, counted=counted)
        return exchange

    @staticmethod
    def _to_mount(mounts: dict[str, str], scope: Scope, inner: dict[str, Any]) -> None:
        """A request for a metrics mount's bare path goes on as the path the mount matches."""
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        key = path[len(root) :] if root and path.startswith(root) else path
        if key not in mounts:
            return
        inner["path"] = path + "/"
        raw = scope.get("raw_path")
        if isinstance(raw, bytes):
            inner["raw_path"] = raw + b"/"
        inner[ROUTE_KEY] = key  # what it is, should it be recorded (not "{mount}/{path}")


def _remote_parent(w3c: list[tuple[int, bytes]]) -> otel_context.Context | None:
    """The caller's span and baggage from the W3C headers (each possibly repeated)."""
    values: dict[int, list[str]] = {_TRACEPARENT: [], _TRACESTATE: [], _BAGGAGE: []}
    for slot, value in w3c:
        values[slot].append(value.decode("latin-1"))
    return propagation.remote_context(values[_TRACEPARENT], values[_TRACESTATE], values[_BAGGAGE])
