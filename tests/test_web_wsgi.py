"""WSGIMiddleware in process (Flask through Werkzeug's test client): same semantics as ASGI."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context
from werkzeug.test import Client

import obskit
import obskit.testing
from obskit import context
from obskit.web.routes import UNMATCHED
from web_support import capture_spans


def _flask() -> Flask:
    app = Flask("t")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        obskit.get_logger("handler").info("handled")
        return obskit.get_context()

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for i in range(3):
                obskit.get_logger("handler").info("chunk", i=i)
                yield f"{i}\n"

        return Response(stream_with_context(chunks()))

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    return app


def _access(capture: obskit.testing.Capture) -> list[dict[str, Any]]:
    return [line for line in capture.logs if line.get("logger") == "obskit.access"]


def test_flask_ids_routes_and_reset() -> None:
    """Ids are echoed and bound, routes are Flask rules, unmatched folds, context is reset."""
    with obskit.testing.isolated() as capture:
        flask_app = _flask()
        flask_app.wsgi_app = obskit.WSGIMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
        client = Client(flask_app)
        response = client.get(
            "/items/7", buffered=True, headers={"X-Request-ID": "w-1", "X-Tenant-ID": "acme"}
        )
        assert 200 == response.status_code
        assert "w-1" == response.headers["X-Request-ID"]
        assert {"correlation_id": "w-1", "tenant_id": "acme"} == response.json
        assert 404 == client.get("/nope", buffered=True).status_code
        assert {} == context.get_context()
    routes = [(line["route"], line["status"]) for line in _access(capture)]
    assert [("/items/<int:item_id>", 200), (UNMATCHED, 404)] == routes


def test_streamed_body_is_timed_to_its_end_with_context() -> None:
    """Lines logged while the body streams carry the request's id; bytes are counted."""
    with obskit.testing.isolated() as capture:
        flask_app = _flask()
        client = Client(obskit.WSGIMiddleware(flask_app.wsgi_app))
        response = client.get("/stream", buffered=True, headers={"X-Request-ID": "s-1"})
        assert b"0\n1\n2\n" == response.data
    chunks = [line for line in capture.logs if line["event"] == "chunk"]
    assert ["s-1"] * 3 == [line["correlation_id"] for line in chunks]
    [access] = _access(capture)
    assert (6, "s-1") == (access["bytes"], access["correlation_id"])


def test_exception_flask_answers_itself_is_named_too() -> None:
    """An exception Flask turns into its own 500 page (the default) is still named in the access
    line, at error level with the exception, and recorded on the span."""
    with obskit.testing.isolated() as capture, capture_spans() as spans:
        client = Client(obskit.WSGIMiddleware(_flask().wsgi_app))
        assert 500 == client.get("/boom", buffered=True).status_code
    [access] = _access(capture)
    assert (500, "RuntimeError", "error") == (
        access["status"],
        access["error_type"],
        access["level"],
    )
    assert "RuntimeError" == access["exception"][0]["exc_type"]
    [span] = spans.servers()
    assert ["exception"] == [event.name for event in span.events]


def test_exception_is_500_with_error_type_and_reraised() -> None:
    """An exception escaping the WSGI app is a 500 named by its type, and is re-raised."""
    with obskit.testing.isolated() as capture, capture_spans() as spans:
        flask_app = _flask()
        flask_app.config["PROPAGATE_EXCEPTIONS"] = True
        client = Client(obskit.WSGIMiddleware(flask_app.wsgi_app))
        with pytest.raises(RuntimeError):
            client.get("/boom")
    [access] = _access(capture)
    assert (500, "RuntimeError") == (access["status"], access["error_type"])
    [span] = spans.servers()
    assert "GET /boom" == span.name
    assert "ERROR" == span.status.status_code.name


def test_closed_before_the_end_is_499() -> None:
    """A body closed before its last chunk because the client left (the server's write failed)
    is recorded as 499."""
    with obskit.testing.isolated() as capture:
        flask_app = _flask()
        middleware = obskit.WSGIMiddleware(flask_app.wsgi_app)
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/stream",
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": None,
        }
        body = middleware(environ, lambda status, headers, exc_info=None: lambda data: None)
        iterator = iter(body)
        next(iterator)
        try:
            raise ConnectionResetError("peer reset")  # the server's write of that chunk
        except ConnectionResetError:
            body.close()  # type: ignore[attr-defined]
    [access] = _access(capture)
    assert 499 == access["status"]


def test_nested_wsgi_middleware_counts_the_request_once() -> None:
    """A WSGIMiddleware inside another adds no second access line or echoed header."""
    with obskit.testing.isolated() as capture:
        flask_app = _flask()
        client = Client(obskit.WSGIMiddleware(obskit.WSGIMiddleware(flask_app.wsgi_app)))
        response = client.get("/items/1", buffered=True, headers={"X-Request-ID": "once"})
    assert ["once"] == response.headers.getlist("X-Request-ID")
    assert 1 == len(_access(capture))


def test_body_iterated_in_another_thread_sees_the_request_context() -> None:
    """A body iterated and closed by another thread carries the request's id; no thread keeps it."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks() -> Iterator[bytes]:
            for i in range(2):
                seen.append(context.get_context())
                yield b"%d" % i

        return chunks()

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "HTTP_X_REQUEST_ID": "thr-1",
        "wsgi.url_scheme": "http",
    }
    after: dict[str, dict[str, Any]] = {}
    with obskit.testing.isolated() as capture:
        body = obskit.WSGIMiddleware(app)(environ, lambda status, headers, exc_info=None: None)
        after["caller"] = context.get_context()

        def serve() -> None:
            assert [b"0", b"1"] == list(body)
            body.close()  # type: ignore[attr-defined]
            after["server"] = context.get_context()

        thread = threading.Thread(target=serve)
        thread.start()
        thread.join()
    assert ["thr-1", "thr-1"] == [fields["correlation_id"] for fields in seen]
    assert {"caller": {}, "server": {}} == after
    [access] = _access(capture)
    assert ("thr-1", 200, 2) == (access["correlation_id"], access["status"], access["bytes"])
