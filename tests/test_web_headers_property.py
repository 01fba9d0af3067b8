"""Hostile headers (hypothesis): the app answers normally, ids are regenerated, nothing leaks."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

import obskit
import obskit.testing

HEADER_NAMES = [
    b"traceparent",
    b"tracestate",
    b"baggage",
    b"x-request-id",
    b"x-correlation-id",
    b"x-tenant-id",
]
garbage = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=8).map(lambda b: b * (64 * 1024 // len(b))),  # 64 KiB values
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"abc\r\nx-injected: 1", b"id\nnext", b"\xff\xfe\x00", b"a" * 129]),
)
hostile = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), garbage), max_size=6)
settings_ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _is_safe_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all("!" <= ch <= "~" for ch in value)


@settings_
@given(hostile)
def test_asgi_survives_hostile_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Any header bytes: 200, one safe echoed id, no injected header, every log line one line."""
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(_ok)
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": b"",
            "headers": [(b"host", b"t"), *headers],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        output = capture.output_lines()
    assert 200 == sent[0]["status"]
    response_headers = sent[0]["headers"]
    assert [b"x-request-id"] == [name for name, _ in response_headers]
    echoed = response_headers[0][1].decode("ascii")
    assert _is_safe_id(echoed)
    supplied = [v for n, v in headers if n in (b"x-request-id", b"x-correlation-id")]
    if echoed.encode() not in supplied:
        assert 32 == len(echoed)  # regenerated
    assert all("\n" not in line and "\r" not in line for line in output)
    [access] = [line for line in capture.logs if line.get("logger") == "obskit.access"]
    assert access.get("tenant_id") is None or _is_safe_id(access["tenant_id"])


@settings_
@given(hostile)
def test_wsgi_survives_hostile_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """The same for WSGI, where servers hand header values over as latin-1 text."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }
    for name, value in headers:
        environ["HTTP_" + name.decode().upper().replace("-", "_")] = value.decode("latin-1")
    with obskit.testing.isolated() as capture:
        statuses: list[tuple[str, list[tuple[str, str]]]] = []
        body = obskit.WSGIMiddleware(app)(environ, lambda s, h, e=None: statuses.append((s, h)))
        assert [b"ok"] == list(body)
        body.close()  # type: ignore[attr-defined]
        output = capture.output_lines()
    [(status, response_headers)] = statuses
    assert "200 OK" == status
    echoed = dict(response_headers)["x-request-id"]
    assert _is_safe_id(echoed)
    assert all("\n" not in line and "\r" not in line for line in output)


def test_werkzeug_client_with_crlf_id_gets_a_fresh_one() -> None:
    """An id smuggling CR/LF is never echoed; a new one is generated instead."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    with obskit.testing.isolated():
        client = Client(obskit.WSGIMiddleware(app))
        environ = {"HTTP_X_REQUEST_ID": "abc\r\nSet-Cookie: x=1"}
        response = client.get("/", environ_overrides=environ, buffered=True)
    assert 200 == response.status_code
    assert 32 == len(response.headers["x-request-id"])
    assert "Set-Cookie" not in response.headers
