"""Span data leaves redacted: attributes, exception events, status and names, on every exporter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

import obskit
import obskit.testing
from obskit.logs import REDACTED
from obskit.logs.redaction import Redactor
from obskit.tracing.scrub import SpanScrubber
from otlp_support import EncodingExporter, Received, attributes_of, otlp_receiver
from web_support import http_scope

SECRETS = (
    "pw-Zx81abcd",
    "tok-Qy72abcdef",
    "at-Lm55xyzabc",
    "pf-Kq33abcd",
    "ex-Rr19abcdefgh",
    "st-Hh07abcdefgh",
    "nm-Vv12abcd",
)


def _spans_with_secrets() -> None:
    """The span data of issue 13 item 6: a password attribute, an authorization header, a
    query with an access token, credentials in a URL and in a span name, and a bearer token in
    an exception's message and in the status description."""
    tracer = obskit.get_tracer()
    with tracer.start_as_current_span("GET https://bob:nm-Vv12abcd@api.example.com/x") as span:
        span.set_attribute("db.password", "pw-Zx81abcd")
        span.set_attribute("http.request.header.authorization", ["Bearer tok-Qy72abcdef"])
        span.set_attribute("url.query", "page=2&access_token=at-Lm55xyzabc")
        span.set_attribute("url.full", "https://bob:pf-Kq33abcd@api.example.com/x?page=2")
        span.set_attribute("token_count", 3)
        span.set_attribute("http.route", "/passwords/reset")
        try:
            raise ValueError("refused, Authorization: Bearer ex-Rr19abcdefgh")
        except ValueError as exc:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, "upstream said token=st-Hh07abcdefgh"))


def _check_kept_span(attributes: dict[str, Any]) -> None:
    assert REDACTED == attributes["db.password"]
    assert REDACTED == attributes["http.request.header.authorization"]
    assert f"page=2&access_token={REDACTED}" == attributes["url.query"]
    assert f"https://bob:{REDACTED}@api.example.com/x?page=2" == attributes["url.full"]
    # What is not secret is kept as it was.
    assert 3 == attributes["token_count"]
    assert "/passwords/reset" == attributes["http.route"]


def _check_otlp(received: Received) -> None:
    raw = received.raw()
    assert raw, "nothing was exported"
    for secret in SECRETS:
        assert secret.encode() not in raw
    [span] = [span for span in received.spans() if span.name.startswith("GET https")]
    assert f"GET https://bob:{REDACTED}@api.example.com/x" == span.name
    _check_kept_span(attributes_of(span))
    [event] = span.events
    event_attributes = {kv.key: kv.value.string_value for kv in event.attributes}
    assert f"refused, Authorization: Bearer {REDACTED}" == event_attributes["exception.message"]
    assert "ValueError" in event_attributes["exception.stacktrace"]
    assert f"upstream said token={REDACTED}" == span.status.message


@pytest.mark.parametrize("sampling", ["tail", "all", "collector"])
def test_otlp_http_export_carries_no_secret(sampling: str) -> None:
    """Under every sampling mode, the OTLP/HTTP protobuf a collector receives holds no secret."""
    with otlp_receiver() as (endpoint, received):
        with obskit.testing.isolated(otlp_endpoint=endpoint, sampling=sampling):
            _spans_with_secrets()
            assert obskit.testing.flush(10)
        _check_otlp(received)


@pytest.mark.parametrize("sampling", ["tail", "all", "collector"])
def test_a_custom_exporter_gets_no_secret(sampling: str) -> None:
    """A span_exporter of the application's own receives the spans redacted too."""
    exporter = EncodingExporter()
    with obskit.testing.isolated(span_exporter=exporter, sampling=sampling):
        _spans_with_secrets()
        assert obskit.testing.flush(10)
    _check_otlp(exporter.received)


def test_local_sink_file_carries_no_secret(tmp_path: Path) -> None:
    """The embedded local sink (no endpoint) writes only redacted span data to its file."""
    sink = tmp_path / "traces.jsonl"
    with obskit.testing.isolated(trace_sink=str(sink)):
        _spans_with_secrets()
        assert obskit.testing.flush(10)
    text = sink.read_text()
    for secret in SECRETS:
        assert secret not in text
    [record] = [json.loads(line) for line in text.splitlines()]
    _check_kept_span(record["attributes"])


def test_console_and_capture_see_the_exported_spans(tmp_path: Path) -> None:
    """The console line and obskit.testing.capture_spans show the spans as exported."""
    with (
        obskit.testing.isolated(trace_sink=str(tmp_path / "t.jsonl"), trace_console=True) as cap,
        obskit.testing.capture_spans() as spans,
    ):
        _spans_with_secrets()
        assert obskit.testing.flush(10)
    output = cap.output.getvalue().decode()
    assert "api.example.com" in output  # the console line names the span
    for secret in SECRETS:
        assert secret not in output
    [span] = spans
    _check_kept_span(dict(span.attributes or {}))


def test_request_span_path_and_query_are_redacted(tmp_path: Path) -> None:
    """A matrix parameter in the path and a token in the query never reach the SERVER span."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = http_scope("/items;access_token=mx-Pp42abcdef")
    scope["query_string"] = b"access_token=qx-Ww91abcdef&page=2"
    with (
        obskit.testing.isolated(trace_sink=str(tmp_path / "t.jsonl"), sampling="all") as cap,
        obskit.testing.capture_spans() as spans,
    ):
        asyncio.run(obskit.ASGIMiddleware(app)(scope, receive, send))
        assert obskit.testing.flush(10)
    [span] = spans
    attributes = dict(span.attributes or {})
    assert f"/items;access_token={REDACTED}" == attributes["url.path"]
    assert f"access_token={REDACTED}&page=2" == attributes["url.query"]
    everything = (tmp_path / "t.jsonl").read_text() + cap.output.getvalue().decode()
    assert "mx-Pp42abcdef" not in everything
    assert "qx-Ww91abcdef" not in everything


def test_a_span_with_nothing_to_clean_is_passed_on_as_it_is() -> None:
    """The scrubber copies a span only when something in it changes."""
    scrubber = SpanScrubber(Redactor())
    plain = ReadableSpan(
        name="GET /items/{id}",
        attributes={"http.route": "/items/{id}", "http.response.status_code": 200},
        events=(Event("retry", {"attempt": 2}),),
    )
    assert plain is scrubber(plain)
    secret = ReadableSpan(name="x", attributes={"api_key": "k-123456"})
    cleaned = scrubber(secret)
    assert cleaned is not secret
    assert {"api_key": REDACTED} == dict(cleaned.attributes or {})


def test_a_failure_while_cleaning_strips_the_span_instead_of_leaking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If cleaning raises, the span goes out with every text value replaced, and it is counted."""
    from obskit import _guard

    scrubber = SpanScrubber(Redactor())

    def broken(*args: Any) -> Any:
        raise RuntimeError("redaction bug")

    monkeypatch.setattr(scrubber._redactor, "clean_mapping", broken)
    span = ReadableSpan(
        name="pay tok-1234567890",
        attributes={"note": "tok-1234567890", "retries": 2},
        status=Status(StatusCode.ERROR, "tok-1234567890"),
    )
    before = _guard.counts().get("tracing.redaction", 0)
    previous = _guard.set_strict(False)
    try:
        out = scrubber(span)
    finally:
        _guard.set_strict(previous)
    assert 1 + before == _guard.counts()["tracing.redaction"]
    assert {"note": REDACTED, "retries": 2} == dict(out.attributes or {})
    assert REDACTED == out.name
    assert out.status.description is None


def test_a_reconfigured_policy_applies_to_the_next_spans() -> None:
    """A re-init() changing redact_keys keeps the tracing part and redacts its next spans."""
    from prometheus_client import CollectorRegistry

    exporter = EncodingExporter()
    registry = CollectorRegistry()
    obskit.init(span_exporter=exporter, sampling="all", registry=registry, log_stream="stderr")
    from obskit import _runtime

    runtime = _runtime.current()
    assert runtime is not None
    tracing = runtime.components["tracing"]
    tracer = obskit.get_tracer()
    tracer.start_span("before", attributes={"order_note": "n0te-visible"}).end()
    assert obskit.testing.flush(10)
    obskit.init(
        span_exporter=exporter,
        sampling="all",
        registry=registry,
        log_stream="stderr",
        redact_keys="order_note",
    )
    runtime = _runtime.current()
    assert runtime is not None
    assert tracing is runtime.components["tracing"]
    tracer.start_span("after", attributes={"order_note": "n0te-hidden"}).end()
    assert obskit.testing.flush(10)
    raw = exporter.received.raw()
    assert b"n0te-visible" in raw
    assert b"n0te-hidden" not in raw


def test_resource_attributes_are_redacted_once_per_resource() -> None:
    """A credential in OTEL_RESOURCE_ATTRIBUTES (a DSN, a token) never leaves with the spans;
    the service's identity attributes are exported as they are."""
    exporter = EncodingExporter()
    with obskit.testing.isolated(
        span_exporter=exporter,
        sampling="all",
        service_name="checkout",
        resource_attributes={
            "db.connection": "postgresql://app:rs-Tt61abcd@db/orders",
            "deploy.api_token": "rs-Uu62abcdef",
        },
    ):
        for n in range(3):
            obskit.get_tracer().start_span(f"work {n}").end()
        assert obskit.testing.flush(10)
    raw = exporter.received.raw()
    assert b"rs-Tt61abcd" not in raw
    assert b"rs-Uu62abcdef" not in raw
    [request] = exporter.received.requests[:1]
    resource = {
        kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes
    }
    assert f"postgresql://app:{REDACTED}@db/orders" == resource["db.connection"]
    assert REDACTED == resource["deploy.api_token"]
    assert "checkout" == resource["service.name"]
    assert 3 == len(exporter.received.spans())
