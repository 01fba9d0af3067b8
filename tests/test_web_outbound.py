"""Outbound httpx (sync, async) and requests: W3C headers, correlation id, CLIENT span, RED."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests
from opentelemetry import baggage
from opentelemetry import context as otel_context

import obskit
import obskit.testing
from obskit.web import propagation
from web_support import capture_spans


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        status = 503 if self.path == "/down" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[str]:
    """A plain HTTP server on loopback that records the headers it receives."""
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _call_all(url: str) -> None:
    httpx.get(url + "/a?token=x", timeout=5)

    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(url + "/b")

    asyncio.run(go())
    requests.get(url + "/c", timeout=5)


def test_clients_carry_trace_baggage_and_correlation_id(upstream: str) -> None:
    """All three clients send traceparent of their CLIENT span, baggage and the correlation id."""
    with obskit.testing.isolated(), capture_spans() as spans, obskit.bound(correlation_id="out-1"):
        token = otel_context.attach(baggage.set_baggage("tenant", "acme corp"))
        try:
            tracer = obskit.get_tracer()
            with tracer.start_as_current_span("work"):
                _call_all(upstream)
        finally:
            otel_context.detach(token)
    clients = [s for s in spans.finished() if s.kind.name == "CLIENT"]
    assert 3 == len(clients)
    assert 3 == len(_Recorder.seen)
    for headers, span in zip(_Recorder.seen, clients, strict=True):
        parsed = propagation.parse_traceparent(headers["traceparent"])
        assert parsed is not None
        assert (span.context.trace_id, span.context.span_id) == (parsed.trace_id, parsed.span_id)
        assert "out-1" == headers["x-request-id"]
        assert {"tenant": "acme corp"} == propagation.parse_baggage([headers["baggage"]])
    assert "http://127.0.0.1" in str(clients[0].attributes["url.full"])
    assert "token" not in str(clients[0].attributes["url.full"])


def test_dependency_red_by_server_address(upstream: str) -> None:
    """http_client_request_duration_seconds counts calls by server address, method and status."""
    with obskit.testing.isolated() as capture:
        httpx.get(upstream + "/ok", timeout=5)
        requests.get(upstream + "/down", timeout=5)
        server = upstream.removeprefix("http://")
        base = {"server_address": server, "http_request_method": "GET"}
        name = "http_client_request_duration_seconds_count"
        assert 1 == capture.sample(
            name, {**base, "http_response_status_code": "200", "error_type": ""}
        )
        assert 1 == capture.sample(
            name, {**base, "http_response_status_code": "503", "error_type": "503"}
        )


def test_connection_error_is_recorded_and_raised() -> None:
    """A refused connection is re-raised unchanged and counted with its error type."""
    with obskit.testing.isolated() as capture:
        with pytest.raises(httpx.ConnectError):
            httpx.get("http://127.0.0.1:9/", timeout=2)
        assert 1 == capture.sample(
            "http_client_request_duration_seconds_count",
            {
                "server_address": "127.0.0.1:9",
                "http_request_method": "GET",
                "http_response_status_code": "",
                "error_type": "httpx.ConnectError",
            },
        )


def test_shutdown_restores_the_clients() -> None:
    """After shutdown the clients' send methods are the originals again."""
    original = (httpx.Client.send, httpx.AsyncClient.send, requests.Session.send)
    with obskit.testing.isolated():
        assert original[0] is not httpx.Client.send
    assert original == (httpx.Client.send, httpx.AsyncClient.send, requests.Session.send)


def test_explicit_traceparent_is_kept(upstream: str) -> None:
    """A traceparent the caller set on purpose is forwarded unchanged."""
    value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with obskit.testing.isolated():
        httpx.get(upstream + "/p", headers={"traceparent": value}, timeout=5)
    assert value == _Recorder.seen[0]["traceparent"]


def test_server_addresses_are_bounded_and_overflow_counted() -> None:
    """Past MAX_SERVERS distinct dependencies, calls fold into __other__ and are counted."""
    from obskit._live import metrics_store
    from obskit.web import outbound

    with obskit.testing.isolated() as capture:
        recorder = outbound.ClientRecorder(metrics_store())
        for i in range(outbound.MAX_SERVERS + 5):
            recorder.observe(f"host-{i}:80", "GET", 200, "", 0.01)
        other = {
            "server_address": outbound.OTHER,
            "http_request_method": "GET",
            "http_response_status_code": "200",
            "error_type": "",
        }
        assert 6 == capture.sample("http_client_request_duration_seconds_count", other)
        assert 6 == capture.sample("obskit_label_overflow_total", {"label": "server_address"})
