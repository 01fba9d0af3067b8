"""obskit's own HTTP work (exporting, its tools' calls) produces no span, metric, log or header."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import requests
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.utils import (
    suppress_http_instrumentation,
    suppress_instrumentation,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry

import obskit
import obskit.testing
from obskit._selfcalls import quiet, quietly
from otlp_support import closed_port, otlp_receiver

_CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage", "x-request-id")
_CLIENT_FAMILY = "http_client_request_duration_seconds"


def _samples(registry: CollectorRegistry, family: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for metric in registry.collect()
        if metric.name == family
        for sample in metric.samples
    ]


def _keeps(registry: CollectorRegistry) -> float:
    return sum(
        value
        for labels, value in _samples(registry, "obskit_tail_decisions")
        if labels.get("decision") == "keep"
    )


def _fail(name: str) -> None:
    with obskit.get_tracer().start_as_current_span(name) as span:
        span.set_status(Status(StatusCode.ERROR))


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({"@path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback HTTP server recording the headers of every request it receives."""
    seen: list[dict[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("R", (_Recorder,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
def test_export_to_a_closed_port_makes_no_error_traces_of_its_own() -> None:
    """With the collector's port closed, one failing request stays the only keep: the exporter's
    failing POSTs make no error traces (which would be kept, exported and fail again, forever)."""
    registry = CollectorRegistry()
    obskit.init(
        otlp_endpoint=f"http://127.0.0.1:{closed_port()}", registry=registry, log_stream="stderr"
    )
    with obskit.testing.capture_logs() as lines:
        _fail("failing request")
        # The exporter retries a refused POST after about 1 s, 2 s, 4 s: before the fix each
        # attempt was a new error trace (kept, exported, refused again), so six seconds made
        # three or more keeps besides the request's own.
        time.sleep(6)
    keeps = _keeps(registry)
    client_calls = _samples(registry, _CLIENT_FAMILY)
    failed = [
        v for labels, v in _samples(registry, "obskit_export_spans") if labels["result"] == "failed"
    ]
    obskit.shutdown(timeout=1)
    # The exporter did try, and was refused: newer exporters log each refused attempt while they
    # retry; older ones (opentelemetry-exporter-otlp 1.30) raise at once, a failed export.
    refused = [line for line in lines if "otlp" in str(line.get("logger"))]
    assert refused or sum(failed) > 0
    assert 1 == keeps
    assert [] == client_calls


@pytest.mark.timeout(60)
def test_exports_to_a_working_collector_carry_no_context_and_are_not_dependencies() -> None:
    """POSTs to a real OTLP receiver carry no trace context and are neither spans nor a dependency
    in ``http_client_request_duration_seconds``, even when a request's context is live."""
    registry = CollectorRegistry()
    with otlp_receiver() as (endpoint, received):
        obskit.init(otlp_endpoint=endpoint, registry=registry, log_stream="stderr")
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with obskit.bound(correlation_id="req-1"):
                _fail("failing request")
                assert obskit.testing.flush(timeout=10)
                _fail("second failing request")  # exported while the first export is done
                assert obskit.testing.flush(timeout=10)
        finally:
            otel_context.detach(token)
        client_calls = _samples(registry, _CLIENT_FAMILY)
        keeps = _keeps(registry)
        obskit.shutdown(timeout=10)
        names = [span.name for span in received.spans()]
        headers = list(received.headers)
    assert ["failing request", "second failing request"] == names
    assert 2 == keeps
    assert [] == client_calls
    assert headers
    assert [] == [h for h in headers for name in _CONTEXT_HEADERS if name in h]


def test_another_sdk_exporter_is_spared() -> None:
    """The SDK's own batch processor sets OpenTelemetry's suppression key while it exports: obskit's
    client patches honour it (no span, no metric, no header on that exporter's POSTs)."""
    with otlp_receiver() as (endpoint, received), obskit.testing.isolated() as capture:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint + "/v1/traces")))
        with obskit.testing.capture_spans() as kept:
            provider.get_tracer("another-library").start_span("theirs").end()
            provider.shutdown()
            obskit.testing.flush()
        assert ["theirs"] == [span.name for span in received.spans()]
        assert [] == [h for h in received.headers for name in _CONTEXT_HEADERS if name in h]
        assert [] == [span for span in kept if span.kind is SpanKind.CLIENT]
        assert None is capture.sample(_CLIENT_FAMILY + "_count", {"http_request_method": "POST"})
        assert [] == _samples(capture.registry, _CLIENT_FAMILY)


def _call_all(url: str) -> None:
    httpx.get(url + "/httpx", timeout=5)
    requests.get(url + "/requests", timeout=5)

    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(url + "/async")

    asyncio.run(go())


def test_quiet_calls_inside_a_request_leave_nothing(
    upstream: tuple[str, list[dict[str, str]]],
) -> None:
    """Inside a request, calls under ``quiet()`` (how obskit's tools call Prometheus or a marker
    API) send no context headers, make no span or metric, and their debug lines are not held
    with the request's trace; the request itself is recorded as usual."""
    url, seen = upstream
    log = obskit.get_logger("tool")
    with (
        obskit.testing.isolated(log_level="info", log_buffer_level="debug") as capture,
        obskit.testing.capture_spans() as kept,
    ):
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with (
                obskit.bound(correlation_id="req-1"),
                obskit.get_tracer().start_as_current_span("request") as span,
            ):
                log.debug("request line")
                with quiet():
                    log.debug("tool line")
                    _call_all(url)
                span.set_status(Status(StatusCode.ERROR))  # kept: its held lines are written
        finally:
            otel_context.detach(token)
        obskit.testing.flush()
        events = [line["event"] for line in capture.logs]
        client_calls = _samples(capture.registry, _CLIENT_FAMILY)
    assert 3 == len(seen)
    assert [] == [h for h in seen for name in _CONTEXT_HEADERS if name in h]
    assert ["request"] == [s.name for s in kept]
    assert [] == client_calls
    assert "request line" in events
    assert "tool line" not in events


@pytest.mark.parametrize(
    "suppress",
    [suppress_instrumentation, suppress_http_instrumentation, quiet],
    ids=["suppress_instrumentation", "suppress_http_instrumentation", "obskit-quiet"],
)
def test_each_suppression_key_is_honoured(
    upstream: tuple[str, list[dict[str, str]]],
    suppress: Callable[[], AbstractContextManager[None]],
) -> None:
    """OpenTelemetry's suppression helpers (all and HTTP-only) and obskit's ``quiet()`` each turn
    obskit's httpx and requests instrumentation off for the calls inside."""
    url, seen = upstream
    with obskit.testing.isolated() as capture, obskit.testing.capture_spans() as kept:
        with obskit.get_tracer().start_as_current_span("outer"), suppress():
            _call_all(url)
        obskit.testing.flush()
        client_calls = _samples(capture.registry, _CLIENT_FAMILY)
    assert 3 == len(seen)
    assert [] == [h for h in seen if "traceparent" in h]
    assert [] == [s for s in kept if s.kind is SpanKind.CLIENT]
    assert [] == client_calls


def test_quietly_covers_threads_and_coroutines(upstream: tuple[str, list[dict[str, str]]]) -> None:
    """``quietly`` makes a thread's whole run, or a coroutine function's, obskit's own work."""
    url, seen = upstream

    @quietly
    def in_thread() -> None:
        httpx.get(url + "/thread", timeout=5)

    @quietly
    async def in_coroutine() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(url + "/coroutine")

    with obskit.testing.isolated() as capture:
        with obskit.get_tracer().start_as_current_span("outer"):
            thread = threading.Thread(target=in_thread)
            thread.start()
            thread.join(10)
            asyncio.run(in_coroutine())
            httpx.get(url + "/instrumented", timeout=5)
        count = capture.sample(
            _CLIENT_FAMILY + "_count",
            {
                "server_address": url.removeprefix("http://"),
                "http_request_method": "GET",
                "http_response_status_code": "200",
                "error_type": "",
            },
        )
    assert ["/thread", "/coroutine", "/instrumented"] == [h["@path"] for h in seen]
    assert [False, False, True] == ["traceparent" in h for h in seen]
    assert 1 == count


# The incident-loop tools: they run beside the service and their HTTP calls are obskit's own. (The
# demo is not among them: its service's calls are the application's, its driver plays the users.)
_TOOL_PACKAGES = ("slo", "canary", "incident")
_HTTP_CLIENTS = re.compile(
    r"^\s*(?:import|from)\s+(httpx|requests|aiohttp|urllib\.request|http\.client)\b", re.M
)


def test_tool_modules_that_speak_http_use_quiet() -> None:
    """Every module of obskit's incident-loop tools that imports an HTTP client also uses
    ``obskit._selfcalls``: their calls to Prometheus, Alertmanager or a marker API stay out of
    the signals."""
    root = Path(obskit.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for package in _TOOL_PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if _HTTP_CLIENTS.search(path.read_text()) and "_selfcalls" not in path.read_text()
    ]
    assert [] == offenders
