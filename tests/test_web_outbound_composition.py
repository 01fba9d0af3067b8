"""obskit's outbound wrappers compose with other instrumentations of the same HTTP clients."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
import wrapt
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan

import obskit
import obskit.testing
from obskit.web import propagation
from web_support import Spans, capture_spans

OTEL_SCOPE = "opentelemetry.instrumentation.httpx"
PATCHED = (
    (httpx.Client, "send"),
    (httpx.AsyncClient, "send"),
    (httpx.HTTPTransport, "handle_request"),
    (httpx.AsyncHTTPTransport, "handle_async_request"),
    (requests.Session, "send"),
)


def _methods() -> list[Any]:
    """What the clients' patched methods are right now (the raw class attributes)."""
    return [inspect.getattr_static(owner, name) for owner, name in PATCHED]


ORIGINALS = _methods()


class _Recorder(BaseHTTPRequestHandler):
    traceparents: list[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.traceparents.append(self.headers.get_all("traceparent") or [])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[str]:
    """A loopback HTTP server recording every traceparent header line it receives."""
    _Recorder.traceparents = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _call(url: str) -> None:
    """One sync and one async httpx call."""
    httpx.get(url + "/sync", timeout=5)

    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(url + "/async")

    asyncio.run(go())


def _clients(spans: Spans) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """obskit's CLIENT spans and OpenTelemetry's httpx instrumentation's, each oldest first."""
    clients = [s for s in spans.finished() if s.kind.name == "CLIENT"]
    ours = [s for s in clients if s.instrumentation_scope.name != OTEL_SCOPE]  # type: ignore[union-attr]
    theirs = [s for s in clients if s.instrumentation_scope.name == OTEL_SCOPE]  # type: ignore[union-attr]
    spans.exporter.clear()
    return ours, theirs


def _span_id(traceparent: str) -> int:
    parsed = propagation.parse_traceparent(traceparent)
    assert parsed is not None
    return parsed.span_id


@pytest.mark.parametrize("first_undone", ["obskit", "opentelemetry"])
def test_with_opentelemetry_httpx_instrumentation_each_records_once(
    upstream: str, first_undone: str
) -> None:
    """With both active each call gets one span of each (OpenTelemetry's a child of obskit's) and
    one traceparent on the wire; undoing either leaves the other whole; undoing both restores
    every method."""
    instrumentor = HTTPXClientInstrumentor()
    with obskit.testing.isolated(), capture_spans() as spans:
        instrumentor.instrument(tracer_provider=spans.provider)
        try:
            _call(upstream)
            ours, theirs = _clients(spans)
            assert (2, 2) == (len(ours), len(theirs))
            for mine, other, wire in zip(ours, theirs, _Recorder.traceparents, strict=True):
                assert 1 == len(wire)
                assert other.context.span_id == _span_id(wire[0])  # type: ignore[union-attr]
                assert other.parent is not None
                assert mine.context.span_id == other.parent.span_id  # type: ignore[union-attr]

            _Recorder.traceparents.clear()
            if first_undone == "obskit":
                obskit.shutdown()
            else:
                instrumentor.uninstrument()
            _call(upstream)
            ours, theirs = _clients(spans)
            remaining = theirs if first_undone == "obskit" else ours
            assert (2, 0) == (len(remaining), len(ours) + len(theirs) - len(remaining))
            for span, wire in zip(remaining, _Recorder.traceparents, strict=True):
                assert [span.context.span_id] == [_span_id(v) for v in wire]  # type: ignore[union-attr]
        finally:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
    assert ORIGINALS == _methods()
    _Recorder.traceparents.clear()
    _call(upstream)
    assert [[], []] == _Recorder.traceparents


def _another_library(header: str) -> tuple[Callable[[], None], list[str]]:
    """Another instrumentation wrapping ``httpx.Client.send`` with wrapt, as contrib ones do;
    it marks each request with ``header``. Returns its undo (OpenTelemetry's style: put back
    what its proxy wraps) and the list of calls it saw."""
    seen: list[str] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(header)
        args[0].headers[header] = "1"
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(httpx.Client, "send", wrapper)
    proxy = inspect.getattr_static(httpx.Client, "send")

    def undo() -> None:
        if inspect.getattr_static(httpx.Client, "send") is proxy:
            httpx.Client.send = proxy.__wrapped__  # type: ignore[method-assign]

    return undo, seen


def test_another_wrapt_wrapper_on_top_survives_obskit_undoing_beneath_it(upstream: str) -> None:
    """obskit wrapped first, another library on top: obskit's undo takes only its own wrapper out
    of the chain; the other keeps working, then undoes to the original."""
    with obskit.testing.isolated(), capture_spans() as spans:
        undo_other, seen = _another_library("x-other")
        try:
            httpx.get(upstream + "/both", timeout=5)
            assert (1, ["x-other"]) == (len(_clients(spans)[0]), seen)
            obskit.shutdown()
            httpx.get(upstream + "/other", timeout=5)
            assert (0, ["x-other", "x-other"]) == (len(_clients(spans)[0]), seen)
            assert [[_Recorder.traceparents[0][0]], []] == _Recorder.traceparents
        finally:
            undo_other()
    assert ORIGINALS == _methods()


def test_obskit_on_top_of_another_wrapper_undoes_to_it(upstream: str) -> None:
    """Another library wrapped first, obskit on top: obskit's undo puts the other's wrapper back,
    which then undoes to the original."""
    undo_other, seen = _another_library("x-other")
    try:
        with obskit.testing.isolated(), capture_spans() as spans:
            httpx.get(upstream + "/both", timeout=5)
            assert (1, ["x-other"]) == (len(_clients(spans)[0]), seen)
        httpx.get(upstream + "/other", timeout=5)
        assert ["x-other", "x-other"] == seen
        assert [] == _Recorder.traceparents[1]
    finally:
        undo_other()
    assert ORIGINALS == _methods()


def test_a_plain_patch_on_top_keeps_obskit_inert_after_its_undo(upstream: str) -> None:
    """A plain function patched over obskit's wrapper (no proxy to unlink from) keeps calling
    it; after obskit's undo that wrapper passes calls straight through: no span, no header."""
    with obskit.testing.isolated(), capture_spans() as spans:
        beneath = httpx.Client.send

        @functools.wraps(beneath)
        def patched(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
            return beneath(self, request, **kwargs)

        httpx.Client.send = patched  # type: ignore[method-assign]
        try:
            obskit.shutdown()
            httpx.get(upstream + "/inert", timeout=5)
            assert [] == _clients(spans)[0]
            assert [[]] == _Recorder.traceparents
        finally:
            httpx.Client.send = ORIGINALS[0]  # type: ignore[method-assign]
    assert ORIGINALS == _methods()
