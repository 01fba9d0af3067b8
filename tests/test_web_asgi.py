"""ASGIMiddleware in process: ids, context, spans, routes, status outcomes, access lines."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

import obskit
import obskit.testing
from obskit import context
from obskit.web.routes import UNMATCHED
from web_support import capture_spans, http_scope

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def _show_context(request: Request) -> Response:
    obskit.get_logger("handler").info("handled")
    return JSONResponse(obskit.get_context())


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


def _starlette() -> Starlette:
    inner = Starlette(routes=[Route("/items/{item_id}", _show_context)])
    return Starlette(
        routes=[
            Route("/items/{item_id}", _show_context),
            Route("/boom", _boom),
            Mount("/v2/{version}", inner),
        ]
    )


def _get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def _access(capture: obskit.testing.Capture) -> list[dict[str, Any]]:
    return [line for line in capture.logs if line.get("logger") == "obskit.access"]


def test_valid_request_id_is_bound_and_echoed() -> None:
    """A valid inbound X-Request-ID is the correlation id in handler logs and on the response."""
    with obskit.testing.isolated() as capture:
        response = _get(obskit.ASGIMiddleware(_starlette()), "/items/1", {"X-Request-ID": "req-1"})
    assert 200 == response.status_code
    assert "req-1" == response.headers["x-request-id"]
    assert {"correlation_id": "req-1"} == response.json()
    assert ["req-1", "req-1"] == [line["correlation_id"] for line in capture.logs[:2]]


def test_invalid_request_id_is_regenerated() -> None:
    """An id with a space or over 128 characters is replaced by a fresh 32-hex id."""
    with obskit.testing.isolated():
        app = obskit.ASGIMiddleware(_starlette())
        for bad in ["has space", "x" * 129]:
            echoed = _get(app, "/items/1", {"X-Request-ID": bad}).headers["x-request-id"]
            assert bad != echoed
            assert 32 == len(echoed)


def test_second_configured_header_is_accepted() -> None:
    """X-Correlation-ID is read too, and echoed under the first configured name."""
    with obskit.testing.isolated():
        response = _get(obskit.ASGIMiddleware(_starlette()), "/items/1", {"X-Correlation-ID": "c9"})
    assert "c9" == response.headers["x-request-id"]


def test_context_is_reset_after_the_request() -> None:
    """Nothing the middleware bound survives the request."""
    with obskit.testing.isolated():
        app = obskit.ASGIMiddleware(_starlette())

        async def go() -> dict[str, Any]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.get("/items/1")
            return context.get_context()

        assert {} == asyncio.run(go())


def test_tenant_from_header_and_callable() -> None:
    """The tenant comes from X-Tenant-ID, or from the user's callable when configured."""
    with obskit.testing.isolated():
        body = _get(obskit.ASGIMiddleware(_starlette()), "/items/1", {"X-Tenant-ID": "acme"}).json()
    assert "acme" == body["tenant_id"]
    with obskit.testing.isolated(tenant_from=lambda scope: scope["path"].split("/")[2]):
        body = _get(obskit.ASGIMiddleware(_starlette()), "/items/globex").json()
    assert "globex" == body["tenant_id"]


def test_route_templates_starlette_and_mounts() -> None:
    """Routes are templates, a mounted app's route joins its mount, no match folds to one value."""
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(_starlette())
        _get(app, "/items/42")
        _get(app, "/v2/7/items/42")
        _get(app, "/nowhere/1")
        _get(app, "/nowhere/2")
    routes = [line["route"] for line in _access(capture)]
    assert ["/items/{item_id}", "/v2/{version}/items/{item_id}", UNMATCHED, UNMATCHED] == routes


def test_route_templates_fastapi() -> None:
    """FastAPI routes, included routers with a prefix and mounted sub-applications."""
    api = FastAPI()
    router = APIRouter(prefix="/orders")
    sub = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @router.get("/{order_id}/lines")
    async def lines(order_id: str) -> list[str]:
        return []

    @sub.get("/users/{uid}")
    async def user(uid: str) -> str:
        return uid

    api.include_router(router)
    api.mount("/sub", sub)
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(api)
        assert 200 == _get(app, "/items/3").status_code
        assert 200 == _get(app, "/orders/o-1/lines").status_code
        assert 200 == _get(app, "/sub/users/u1").status_code
        assert 404 == _get(app, "/missing").status_code
    routes = [line["route"] for line in _access(capture)]
    assert ["/items/{item_id}", "/orders/{order_id}/lines", "/sub/users/{uid}", UNMATCHED] == routes


def test_single_level_app_gets_a_plain_scope_copy() -> None:
    """An app routed in one level sees a plain dict scope and still reports its templates."""
    seen: list[type] = []

    async def record_type(request: Request) -> Response:
        seen.append(type(request.scope))
        return PlainTextResponse("ok")

    api = FastAPI()
    api.add_api_route("/items/{item_id}", record_type)
    router = APIRouter(prefix="/orders")
    router.add_api_route("/{order_id}", record_type)
    api.include_router(router)
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(api)
        assert 200 == _get(app, "/items/1").status_code
        assert 200 == _get(app, "/orders/o-1").status_code
        assert 404 == _get(app, "/missing").status_code
    assert [dict, dict] == seen
    routes = [line["route"] for line in _access(capture)]
    assert ["/items/{item_id}", "/orders/{order_id}", UNMATCHED] == routes


def test_app_with_mounts_is_recorded_through_wrapping_middleware() -> None:
    """Mounts are found through middleware wrapping the app, and the mount prefix is kept."""
    from starlette.middleware.cors import CORSMiddleware

    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(CORSMiddleware(_starlette(), allow_origins=["*"]))
        _get(app, "/items/42")
        _get(app, "/v2/7/items/42")
    routes = [line["route"] for line in _access(capture)]
    assert ["/items/{item_id}", "/v2/{version}/items/{item_id}"] == routes


def test_mount_added_later_is_recorded_from_its_first_request_on() -> None:
    """A mount added after serving began: its first request is unmatched, later ones are joined."""
    inner = Starlette(routes=[Route("/items/{item_id}", _show_context)])
    outer = Starlette(routes=[Route("/items/{item_id}", _show_context)])
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(outer)
        _get(app, "/items/1")
        outer.router.routes.append(Mount("/v2/{version}", inner))
        _get(app, "/v2/7/items/42")
        _get(app, "/v2/8/items/43")
        _get(app, "/items/2")
    routes = [line["route"] for line in _access(capture)]
    expected = ["/items/{item_id}", UNMATCHED, "/v2/{version}/items/{item_id}", "/items/{item_id}"]
    assert expected == routes


def test_exception_is_500_recorded_and_reraised() -> None:
    """A handler exception is a 500 with its type as error_type, on the span, and re-raised."""

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("missing")

    with obskit.testing.isolated() as capture, capture_spans() as spans:
        app = obskit.ASGIMiddleware(failing)
        with pytest.raises(KeyError):
            asyncio.run(_call(app, _scope("/x")))
    [line] = _access(capture)
    assert (500, "KeyError") == (line["status"], line["error_type"])
    # The access line says why, inside the request's context: level error, exception fields.
    assert "error" == line["level"]
    assert "KeyError" == line["exception"][0]["exc_type"]
    assert line["correlation_id"]
    [span] = spans.servers()
    assert "ERROR" == span.status.status_code.name
    assert "KeyError" == span.attributes["error.type"]
    assert ["exception"] == [event.name for event in span.events]


def test_starlette_error_page_names_the_exception() -> None:
    """Starlette's own 500 page is still recorded with the exception's type."""
    with obskit.testing.isolated() as capture:
        assert 500 == _get(obskit.ASGIMiddleware(_starlette()), "/boom").status_code
    [line] = _access(capture)
    assert ("/boom", "RuntimeError") == (line["route"], line["error_type"])


def test_client_disconnect_is_499_not_an_error() -> None:
    """A client gone before the response completes is recorded as 499 without error_type."""

    async def waits_for_disconnect(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    with obskit.testing.isolated() as capture:
        asyncio.run(_call(obskit.ASGIMiddleware(waits_for_disconnect), _scope("/stream")))
    [line] = _access(capture)
    assert 499 == line["status"]
    assert "error_type" not in line


def test_parent_trace_context_is_used() -> None:
    """The SERVER span continues the caller's trace and is named method plus route."""
    with obskit.testing.isolated(), capture_spans() as spans:
        _get(obskit.ASGIMiddleware(_starlette()), "/items/1", {"traceparent": PARENT})
    [span] = spans.servers()
    assert "GET /items/{item_id}" == span.name
    assert 0x0AF7651916CD43DD8448EB211C80319C == span.context.trace_id
    assert span.parent is not None
    assert 0xB7AD6B7169203331 == span.parent.span_id
    assert "/items/{item_id}" == span.attributes["http.route"]
    assert 200 == span.attributes["http.response.status_code"]


def test_secret_query_values_are_redacted() -> None:
    """Query values under secret-looking names never reach the access line or the span."""
    with obskit.testing.isolated() as capture, capture_spans() as spans:
        _get(obskit.ASGIMiddleware(_starlette()), "/items/1?api_key=s3cr3t&page=2")
    [line] = _access(capture)
    assert "/items/1?api_key=[REDACTED]&page=2" == line["path"]
    assert "s3cr3t" not in str(spans.servers()[0].attributes)


def test_users_base_http_middleware_does_not_hide_context() -> None:
    """A user's BaseHTTPMiddleware inside obskit's still lets handlers see the correlation id."""

    class UserMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            response.headers["x-user-saw"] = str(obskit.get_context().get("correlation_id"))
            return response

    app = _starlette()
    app.add_middleware(UserMiddleware)
    with obskit.testing.isolated():
        response = _get(obskit.ASGIMiddleware(app), "/items/1", {"X-Request-ID": "bhm-1"})
    assert "bhm-1" == response.json()["correlation_id"]
    assert "bhm-1" == response.headers["x-user-saw"]


def test_lifespan_and_unknown_scopes_pass_through_untouched() -> None:
    """lifespan and unknown scope types reach the app as the very same objects."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    with obskit.testing.isolated():
        middleware = obskit.ASGIMiddleware(app)
        for scope in ({"type": "lifespan"}, {"type": "custom.thing"}):
            asyncio.run(middleware(scope, receive, send))
            assert (scope, receive, send) == seen[-1]
            assert seen[-1][0] is scope


@pytest.mark.parametrize("obskit_lines", [True, False])
def test_server_access_logger_is_inert_only_while_obskit_replaces_it(obskit_lines: bool) -> None:
    """uvicorn's access logger has no handler while obskit writes the access lines (uvicorn asks
    hasHandlers() before building its line), is bridged otherwise, and is restored at shutdown."""
    access = logging.getLogger("uvicorn.access")
    own = logging.StreamHandler(io.StringIO())
    access.addHandler(own)
    access.propagate = False
    try:
        with obskit.testing.isolated(access_log=obskit_lines) as capture:
            assert 200 == _get(obskit.ASGIMiddleware(_starlette()), "/items/1").status_code
            assert (not obskit_lines) == access.hasHandlers()
            access.info('127.0.0.1 - "GET /items/1 HTTP/1.1" 200')
            bridged = [line for line in capture.logs if line.get("logger") == "uvicorn.access"]
            assert (0 if obskit_lines else 1) == len(bridged)
        assert [own] == access.handlers
        assert access.propagate is False
    finally:
        access.removeHandler(own)
        access.propagate = True


def test_request_body_is_never_read() -> None:
    """A handler that does not read the body leaves receive() uncalled."""
    calls: list[str] = []

    async def receive() -> dict[str, Any]:
        calls.append("receive")
        return {"type": "http.request", "body": b"secret", "more_body": False}

    with obskit.testing.isolated():
        app = obskit.ASGIMiddleware(PlainTextResponse("ok"))
        asyncio.run(_call(app, _scope("/"), receive))
    assert [] == calls


def test_works_without_init() -> None:
    """Before init() the middleware passes requests straight through."""
    response = _get(obskit.ASGIMiddleware(_starlette()), "/items/1", {"X-Request-ID": "q"})
    assert 200 == response.status_code
    assert "x-request-id" not in response.headers


def _scope(path: str) -> dict[str, Any]:
    return http_scope(path, {"host": "test"})


async def _call(app: Any, scope: dict[str, Any], receive: Any = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def disconnect() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive or disconnect, send)
    return sent


def _sample(capture: obskit.testing.Capture, name: str, **labels: str) -> float | None:
    return capture.sample(name, labels)


def test_red_metrics_use_route_templates() -> None:
    """http_server_request_duration_seconds is labelled by template; raw paths never appear."""
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(_starlette())
        for i in range(3):
            _get(app, f"/items/{i}")
        _get(app, "/nowhere")
        _get(app, "/boom")
        labels = {
            "http_request_method": "GET",
            "url_scheme": "http",
            "error_type": "",
            "tenant_id": "",
        }
        count = "http_server_request_duration_seconds_count"
        assert 3 == capture.sample(
            count, {**labels, "http_route": "/items/{item_id}", "http_response_status_code": "200"}
        )
        assert 1 == capture.sample(
            count, {**labels, "http_route": UNMATCHED, "http_response_status_code": "404"}
        )
        assert 1 == capture.sample(
            count,
            {
                **labels,
                "http_route": "/boom",
                "http_response_status_code": "500",
                "error_type": "RuntimeError",
            },
        )
        exposition = obskit_exposition(capture)
    assert "/items/1" not in exposition
    assert "/nowhere" not in exposition


def obskit_exposition(capture: obskit.testing.Capture) -> str:
    from prometheus_client import generate_latest

    return generate_latest(capture.registry).decode()


def test_sse_is_measured_as_a_stream() -> None:
    """An event stream counts as a request up to its first byte and lives in the stream family."""

    async def events(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})

    with obskit.testing.isolated() as capture:
        asyncio.run(_call(obskit.ASGIMiddleware(events), _scope("/events")))
        stream = {"kind": "sse", "http_route": UNMATCHED}
        assert 1 == capture.sample(
            "http_server_stream_duration_seconds_count", {**stream, "outcome": "closed"}
        )
        assert 0 == capture.sample("http_server_active_streams", stream)


def test_websocket_session_is_measured_as_a_stream() -> None:
    """A WebSocket session binds ids, and its life is in the stream family, not request latency."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(obskit.get_context())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws/{room}", chat)])
    scope = {**_scope("/ws/lobby"), "type": "websocket", "headers": [(b"x-request-id", b"ws-1")]}
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with obskit.testing.isolated() as capture:
        asyncio.run(obskit.ASGIMiddleware(app)(scope, receive, send))
        assert '"correlation_id":"ws-1"' in sent[1]["text"].replace(" ", "")
        stream = {"kind": "websocket", "http_route": "/ws/{room}"}
        assert 1 == capture.sample(
            "http_server_stream_duration_seconds_count", {**stream, "outcome": "closed"}
        )
        exposition = obskit_exposition(capture)
    requests = [
        line
        for line in exposition.splitlines()
        if line.startswith("http_server_request_duration_seconds_count{")
    ]
    assert [] == [line for line in requests if 'http_route="/ws' in line]


def test_server_error_status_without_exception_names_the_status() -> None:
    """A 503 the app chose to send is a server error whose error_type is "503"."""
    with obskit.testing.isolated() as capture:
        asyncio.run(_call(obskit.ASGIMiddleware(PlainTextResponse("busy", 503)), _scope("/")))
    [line] = _access(capture)
    assert (503, "503") == (line["status"], line["error_type"])


def test_error_after_response_started_keeps_the_sent_status() -> None:
    """An exception mid-body keeps the status already sent and names the exception."""

    async def breaks_mid_body(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("broken stream")

    with obskit.testing.isolated() as capture, pytest.raises(ValueError):
        asyncio.run(_call(obskit.ASGIMiddleware(breaks_mid_body), _scope("/")))
    [line] = _access(capture)
    assert (200, "ValueError", 4) == (line["status"], line["error_type"], line["bytes"])


def test_nested_middleware_counts_the_request_once() -> None:
    """An ASGIMiddleware inside another (a wrapped sub-app) adds no second line or span."""
    with obskit.testing.isolated() as capture, capture_spans() as spans:
        app = obskit.ASGIMiddleware(obskit.ASGIMiddleware(_starlette()))
        response = _get(app, "/items/1", {"x-request-id": "once"})
    assert ["once"] == response.headers.get_list("x-request-id")
    assert 1 == len(_access(capture))
    assert 1 == len(spans.servers())
