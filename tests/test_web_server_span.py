"""The request's lightweight SERVER span: what it exports when kept equals what an SDK span would.

With the tail sampler as the only span processor, the middleware starts a ``ServerSpan`` (cheap
until kept); with any other processor it starts an SDK span. These tests run the same requests
both ways and compare what is exported.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import obskit
import obskit.testing
from obskit.tracing import provider, tail
from obskit.tracing.server_span import ServerSpan
from obskit.tracing.verdicts import ADJUSTED_COUNT, RULE, TRIGGER
from web_support import http_scope

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SAMPLING_KEYS = {RULE, TRIGGER, ADJUSTED_COUNT}

seen_span_types: list[type[Any]] = []


async def _annotated(request: Request) -> Response:
    span = trace.get_current_span()
    seen_span_types.append(type(span))
    span.set_attribute("app.order_id", "o-17")
    span.set_attribute("app.tags", ["a", "b"])
    span.set_attribute("app.set", {2, 1})  # type: ignore[arg-type]
    span.add_event("checked", {"stock": 3})
    with obskit.get_tracer().start_as_current_span("child") as child:
        child.set_attribute("app.step", "lookup")
    if request.path_params["mode"] == "fail":
        raise RuntimeError("out of stock")
    return PlainTextResponse("ok")


async def _plain(request: Request) -> Response:
    seen_span_types.append(type(trace.get_current_span()))
    return JSONResponse(
        {"trace_id": format(trace.get_current_span().get_span_context().trace_id, "032x")}
    )


def _app() -> Any:
    return obskit.ASGIMiddleware(
        Starlette(
            routes=[Route("/orders/{mode}", _annotated), Route("/plain/{n}", _plain)],
        )
    )


class _Response:
    """What a raw ASGI call returned."""

    def __init__(self) -> None:
        self.status_code = 0
        self.body = b""

    def json(self) -> Any:
        return json.loads(self.body)


async def _call(app: Any, path: str, headers: dict[str, str] | None) -> _Response:
    """One GET straight through ASGI: no HTTP client, so no client span in the trace (obskit
    instruments httpx), and the request is the root of its trace in this process."""
    response = _Response()
    scope = http_scope(path, headers)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status_code = message["status"]
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    try:
        await app(scope, receive, send)
    except Exception:
        response.status_code = response.status_code or 500  # the server would answer 500
    return response


def _get(app: Any, paths: list[str], headers: dict[str, str] | None = None) -> list[_Response]:
    async def go() -> list[_Response]:
        return [await _call(app, path, headers) for path in paths]

    return asyncio.run(go())


class _Recorder(SpanProcessor):
    """An application's own processor: it sees every span start and end."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def _exported(path: str, extra_processor: bool, **settings: Any) -> list[ReadableSpan]:
    """The spans exported for one request, with or without an application processor."""
    seen_span_types.clear()
    recorder = _Recorder()
    with obskit.testing.isolated(**settings), obskit.testing.capture_spans() as spans:
        if extra_processor:
            trace.get_tracer_provider().add_span_processor(recorder)  # type: ignore[attr-defined]
        try:
            _get(_app(), [path])
            obskit.testing.flush()
        finally:
            if extra_processor:  # the global provider keeps it across re-inits: take it back
                provider._SWITCH._added.remove(recorder)
    return list(spans)


def _essence(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "status": span.status.status_code,
        "attributes": {
            k: v
            for k, v in (span.attributes or {}).items()
            if k not in SAMPLING_KEYS and k not in ("correlation_id", "client.address")
        },
        "events": [(e.name, sorted((e.attributes or {}).keys())) for e in span.events],
        "parent_is_remote": span.parent.is_remote if span.parent else None,
    }


def test_only_the_tail_sampler_gives_a_lightweight_span() -> None:
    """With the tail sampler alone the handler's current span is a ServerSpan; with another
    processor added by the application it is the SDK's span."""
    _exported("/plain/1", extra_processor=False)
    assert [ServerSpan] == seen_span_types
    _exported("/plain/1", extra_processor=True)
    assert 1 == len(seen_span_types)
    assert ServerSpan is not seen_span_types[0]


def test_kept_error_trace_exports_what_an_sdk_span_would() -> None:
    """An errored request exports the same server span (name, status, validated attributes,
    events) and child either way; an attribute of an unsupported type is converted as the SDK
    converts it."""
    lite = _exported("/orders/fail", extra_processor=False)
    sdk = _exported("/orders/fail", extra_processor=True)
    assert ["GET /orders/{mode}", "child"] == sorted(s.name for s in lite)
    lite_server = next(s for s in lite if s.kind is trace.SpanKind.SERVER)
    sdk_server = next(s for s in sdk if s.kind is trace.SpanKind.SERVER)
    assert _essence(sdk_server) == _essence(lite_server)
    # The SDK's own rule for a set (releases differ: dropped, or its str()), applied alike.
    sdk_rule = BoundedAttributes(attributes={"app.set": {2, 1}}).get("app.set")  # type: ignore[dict-item]
    assert sdk_rule == (lite_server.attributes or {}).get("app.set")
    assert ("a", "b") == (lite_server.attributes or {})["app.tags"]
    assert "error" == (lite_server.attributes or {})[RULE]
    child = next(s for s in lite if s.name == "child")
    assert lite_server.context is not None
    assert child.parent is not None
    assert lite_server.context.trace_id == child.context.trace_id  # type: ignore[union-attr]
    assert lite_server.context.span_id == child.parent.span_id


def test_dropped_trace_exports_nothing_and_frees_its_buffer() -> None:
    """With a zero baseline, ordinary requests (with a child span each) export nothing, and no
    trace stays buffered."""
    with obskit.testing.isolated(baseline_ratio=0.0), obskit.testing.capture_spans() as spans:
        app = _app()
        _get(app, [f"/orders/ok-{n}" for n in range(20)])
        sampler = obskit._runtime.current().components["tracing"].sampler  # type: ignore[union-attr]
        assert (0, 0, 0) == sampler.buffered()
        assert 40 == sampler.stats()["spans_out"]["dropped"]  # server and child
    assert [] == list(spans)


def test_baseline_keeps_everything_at_ratio_one() -> None:
    """At a baseline ratio of 1 every request's server span is exported, marked baseline."""
    with obskit.testing.isolated(baseline_ratio=1.0), obskit.testing.capture_spans() as spans:
        _get(_app(), [f"/plain/{n}" for n in range(5)])
        obskit.testing.flush()
    servers = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert 5 == len(servers)
    assert {"baseline"} == {(s.attributes or {})[RULE] for s in servers}
    assert {"GET /plain/{n}"} == {s.name for s in servers}


def test_remote_parent_and_tracestate_are_kept() -> None:
    """A traceparent makes the server span a child of the caller, in the caller's trace, with
    the caller's tracestate entries carried on the exported span."""
    with obskit.testing.isolated(baseline_ratio=1.0), obskit.testing.capture_spans() as spans:
        (response,) = _get(_app(), ["/plain/1"], {"traceparent": PARENT, "tracestate": "vendor=v1"})
        obskit.testing.flush()
    assert "0af7651916cd43dd8448eb211c80319c" == response.json()["trace_id"]
    (server,) = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert server.parent is not None
    assert server.parent.is_remote
    assert 0xB7AD6B7169203331 == server.parent.span_id
    assert "v1" == server.context.trace_state.get("vendor")  # type: ignore[union-attr]


def test_keep_if_reads_the_span_like_a_readable_span() -> None:
    """A user's keep_if predicate gets the lightweight span and reads it through the
    ReadableSpan API (attributes, name, kind)."""

    def keep(span: ReadableSpan) -> bool:
        return (
            span.kind is trace.SpanKind.SERVER
            and span.attributes.get("http.route") == "/orders/{mode}"
        )  # type: ignore[union-attr]

    with (
        obskit.testing.isolated(baseline_ratio=0.0, keep_if=keep),
        obskit.testing.capture_spans() as spans,
    ):
        _get(_app(), ["/orders/ok", "/plain/1"])
        obskit.testing.flush()
    servers = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert ["GET /orders/{mode}"] == [s.name for s in servers]
    assert "keep_if" == (servers[0].attributes or {})[RULE]


def test_ended_span_ignores_late_changes() -> None:
    """After the request, the span no longer records: late attributes and events are ignored
    and ending it twice changes nothing."""
    kept: list[Any] = []

    async def grab(request: Request) -> Response:
        kept.append(trace.get_current_span())
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/grab", grab)]))
    with obskit.testing.isolated(baseline_ratio=1.0), obskit.testing.capture_spans() as spans:
        _get(app, ["/grab"])
        span = kept[0]
        assert not span.is_recording()
        span.set_attribute("late", 1)
        span.add_event("late")
        span.end()
        obskit.testing.flush()
    (server,) = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert "late" not in (server.attributes or {})
    assert () == tuple(server.events)


def _sampler() -> Any:
    runtime = obskit._runtime.current()
    assert runtime is not None
    return runtime.components["tracing"].sampler  # type: ignore[attr-defined]


def _debug_then(outcome: str) -> Any:
    async def handler(request: Request) -> Response:
        obskit.get_logger("handler").debug("detail", step=request.path_params["n"])
        if outcome == "fail":
            return PlainTextResponse("no", status_code=503)
        return PlainTextResponse("ok")

    return handler


def test_debug_lines_of_a_single_span_request_follow_its_decision() -> None:
    """A request with no child span still holds its debug lines: written when the request fails
    (kept), discarded when it is dropped."""
    app = obskit.ASGIMiddleware(
        Starlette(
            routes=[Route("/ok/{n}", _debug_then("ok")), Route("/fail/{n}", _debug_then("fail"))]
        )
    )
    with obskit.testing.isolated(baseline_ratio=0.0, log_level="info") as capture:
        _get(app, ["/ok/1", "/fail/2", "/ok/3"])
        buffer = obskit._runtime.current().components["tracing"].log_buffer  # type: ignore[union-attr]
        counts = dict(buffer.counts)
    written = [json.loads(line) for line in capture.output_lines()]
    assert ["2"] == [line["step"] for line in written if line.get("event") == "detail"]
    assert 2 == counts["discarded"]
    assert 1 == counts["written"]


def test_exemplars_of_single_span_requests_follow_the_decision() -> None:
    """A RED exemplar offered while a request runs waits on its span: applied when the request
    is kept, counted as discarded when it is dropped."""
    app = obskit.ASGIMiddleware(
        Starlette(
            routes=[Route("/ok/{n}", _debug_then("ok")), Route("/fail/{n}", _debug_then("fail"))]
        )
    )
    with obskit.testing.isolated(baseline_ratio=0.0):
        _get(app, ["/ok/1", "/ok/2", "/fail/3"])
        stats = _sampler().stats()
    assert {"applied": 1, "discarded": 2, "overflow": 0} == stats["exemplars"]
    assert 0 == stats["traces"]


def test_a_slow_running_request_is_promoted_and_its_span_follows() -> None:
    """The tick keeps a request's trace once it runs past the slow threshold, before it ends;
    the span, ending later, is exported with the slow rule."""
    states: list[int] = []

    async def slow(request: Request) -> Response:
        sampler = _sampler()
        trace_id = trace.get_current_span().get_span_context().trace_id
        states.append(sampler.state(trace_id))
        sampler.sweep(now=time.time_ns() + 5_000_000_000)  # as if 5 s had passed
        states.append(sampler.state(trace_id))
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/slow", slow)]))
    with (
        obskit.testing.isolated(baseline_ratio=0.0, slow_threshold_ms=1000),
        obskit.testing.capture_spans() as spans,
    ):
        _get(app, ["/slow"])
        obskit.testing.flush()
    assert [tail.PENDING, tail.KEPT] == states
    (server,) = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert "slow" == (server.attributes or {})[RULE]
    assert "GET /slow" == server.name


def test_a_flush_during_a_request_decides_it_and_the_span_follows() -> None:
    """flush() while a request runs decides its trace (baseline 1: kept); the span that ends
    afterwards is still exported, flagged by its trigger."""

    async def flushing(request: Request) -> Response:
        obskit.testing.flush()
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/f", flushing)]))
    with obskit.testing.isolated(baseline_ratio=1.0), obskit.testing.capture_spans() as spans:
        _get(app, ["/f"])
        obskit.testing.flush()
    (server,) = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert "flush" == (server.attributes or {})[TRIGGER]


def test_a_child_error_keeps_the_whole_request() -> None:
    """A child span that fails while the request runs keeps the trace at once; the server span,
    ending later, joins it, so the request is exported whole."""

    async def handler(request: Request) -> Response:
        with obskit.get_tracer().start_as_current_span("step") as step:
            step.set_status(trace.StatusCode.ERROR)
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/c", handler)]))
    with (
        obskit.testing.isolated(baseline_ratio=0.0),
        obskit.testing.capture_spans() as spans,
    ):
        _get(app, ["/c"])
        obskit.testing.flush()
        assert (0, 0, 0) == _sampler().buffered()
    names = sorted(s.name for s in spans)
    assert ["GET /c", "step"] == names


def test_two_requests_sharing_a_caller_trace_are_both_decided() -> None:
    """Two concurrent requests with the same incoming trace id (one caller, two calls) both end
    in that trace's decision and leave nothing buffered."""

    async def pause(request: Request) -> Response:
        await asyncio.sleep(0.01)
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/p", pause)]))

    async def go() -> None:
        await asyncio.gather(*(_call(app, "/p", {"traceparent": PARENT}) for _ in range(2)))

    with obskit.testing.isolated(baseline_ratio=1.0), obskit.testing.capture_spans() as spans:
        asyncio.run(go())
        obskit.testing.flush()
        assert (0, 0, 0) == _sampler().buffered()
    assert 2 == len([s for s in spans if s.kind is trace.SpanKind.SERVER])


def test_a_root_decided_while_its_rules_run_follows_that_decision() -> None:
    """If the tick decides a request (slow) while the request's own end is checking its rules,
    the span follows the tick's decision: exported, no internal error."""

    def keep_if(span: ReadableSpan) -> bool:
        if span.kind is trace.SpanKind.SERVER:
            _sampler().sweep(now=time.time_ns() + 5_000_000_000)  # the tick, mid-end
        return False

    async def handler(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/r", handler)]))
    with (
        obskit.testing.isolated(baseline_ratio=0.0, keep_if=keep_if),
        obskit.testing.capture_spans() as spans,
    ):
        _get(app, ["/r"])
        obskit.testing.flush()
        assert 0 == _sampler().stats()["traces"]
    (server,) = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert "slow" == (server.attributes or {})[RULE]


def test_threads_and_the_tick_race_without_errors() -> None:
    """Four threads starting and ending request spans while another thread sweeps continually:
    every span is accounted for as kept or dropped, nothing stays open, no internal error."""
    import threading

    from obskit.tracing.api import get_tracer
    from obskit.tracing.server_span import start_server_span

    errors: list[BaseException] = []
    per_thread = 500

    with obskit.testing.isolated(baseline_ratio=0.5, slow_threshold_ms=10_000):
        tracer = get_tracer()
        sampler = _sampler()
        stop = threading.Event()

        def requests() -> None:
            try:
                for _ in range(per_thread):
                    start_server_span(tracer, "GET", None, {"url.path": "/x"}).end()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def ticking() -> None:
            try:
                while not stop.is_set():
                    sampler.sweep(now=time.time_ns() + 20_000_000_000)  # past slow and timeout
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        sweeper = threading.Thread(target=ticking)
        sweeper.start()
        workers = [threading.Thread(target=requests) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        stop.set()
        sweeper.join(timeout=10)
        stats = sampler.stats()
    assert [] == errors
    assert 0 == stats["traces"]
    decided = sum(stats["decisions"].values()) + sum(stats["late"].values())
    assert 4 * per_thread <= decided


def test_debug_lines_after_a_child_decided_the_trace_are_not_stranded() -> None:
    """Once a child's error has kept the request's trace, the request's later debug lines are
    written at once, not held for a decision that was already made."""

    async def handler(request: Request) -> Response:
        with obskit.get_tracer().start_as_current_span("step") as step:
            step.set_status(trace.StatusCode.ERROR)
        obskit.get_logger("handler").debug("after the failed step")
        return PlainTextResponse("ok")

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/d", handler)]))
    with obskit.testing.isolated(baseline_ratio=0.0, log_level="info") as capture:
        _get(app, ["/d"])
        buffer = obskit._runtime.current().components["tracing"].log_buffer  # type: ignore[union-attr]
        assert (0, 0) == buffer.held()
    written = [json.loads(line) for line in capture.output_lines()]
    assert ["after the failed step"] == [
        line["event"] for line in written if line.get("logger") == "handler"
    ]


def test_doctor_says_which_span_requests_get() -> None:
    """obskit doctor reports the lightweight span by default, and SDK spans once the application
    registers a span processor of its own."""
    recorder = _Recorder()
    with obskit.testing.isolated():
        assert "lightweight until kept" == obskit.doctor()["wired"]["server_spans"]
        trace.get_tracer_provider().add_span_processor(recorder)  # type: ignore[attr-defined]
        try:
            assert obskit.doctor()["wired"]["server_spans"].startswith("SDK spans")
        finally:
            provider._SWITCH._added.remove(recorder)


def test_wsgi_requests_take_the_same_path() -> None:
    """Under the WSGI middleware (Flask) a request's span is the lightweight one too: a failing
    request is exported with its route and the exception Flask answered with a 500 page; a
    streamed body ends the span
    only when the body is closed; nothing stays open."""
    from flask import Flask
    from flask import Response as FlaskResponse
    from werkzeug.test import Client

    flask_app = Flask("wsgi-span")
    seen: list[type[Any]] = []

    @flask_app.get("/fail/<int:n>")
    def fail(n: int) -> str:
        seen.append(type(trace.get_current_span()))
        raise RuntimeError("broken")

    @flask_app.get("/stream")
    def stream() -> FlaskResponse:
        def chunks() -> Any:
            yield "a"
            yield "b"

        return FlaskResponse(chunks())

    with obskit.testing.isolated(baseline_ratio=1.0), obskit.testing.capture_spans() as spans:
        client = Client(obskit.WSGIMiddleware(flask_app))
        failed_response = client.get("/fail/3", buffered=True)  # buffered: read and closed
        assert 500 == failed_response.status_code
        assert 1 == _sampler().stats()["spans_out"]["kept"]
        streamed = client.get("/stream")
        assert 1 == len(
            _sampler()._roots.open
        )  # the streamed request runs until its body is closed
        assert b"ab" == b"".join(streamed.iter_encoded())
        streamed.close()
        assert 0 == len(_sampler()._roots.open)
        obskit.testing.flush()
        assert 0 == _sampler().stats()["traces"]
    assert [ServerSpan] == seen
    servers = {s.name: s for s in spans if s.kind is trace.SpanKind.SERVER}
    assert {"GET /fail/<int:n>", "GET /stream"} == set(servers)
    failed = servers["GET /fail/<int:n>"]
    assert "error" == (failed.attributes or {})[RULE]
    assert 500 == (failed.attributes or {})["http.response.status_code"]
    assert "RuntimeError" == (failed.attributes or {})["error.type"]
    assert ["exception"] == [event.name for event in failed.events]


def test_requests_that_never_end_stay_bounded_and_are_decided() -> None:
    """Spans that are started and never ended (a leak in a handler's own code, say) cannot grow
    the sampler without bound: running roots are capped at max_traces, the overflow takes the
    general path with its own caps (counted), and the tick decides them all at the timeout."""
    from obskit.tracing.api import get_tracer
    from obskit.tracing.server_span import start_server_span

    with obskit.testing.isolated(max_traces=50, trace_timeout_s=5.0, slow_threshold_ms=60_000):
        tracer = get_tracer()
        sampler = _sampler()
        leaked = [start_server_span(tracer, "GET", None, {}) for _ in range(200)]
        assert 50 == len(sampler._roots.open)
        assert len(sampler._buffer.pending) <= 50
        assert sum(sampler.stats()["evictions"].values()) >= 100
        sampler.sweep(now=time.time_ns() + 10_000_000_000)  # past the timeout
        assert 0 == sampler.stats()["traces"]
        for span in leaked:  # ending them late is harmless: they follow their decisions
            span.end()
        assert (0, 0, 0) == sampler.buffered()


def test_span_context_is_the_one_the_public_constructor_builds() -> None:
    """The request span's context, built without the constructor's checks, equals the
    constructor's for the same fields (ids, flags, tracestate, validity)."""
    from opentelemetry.trace import SpanContext

    from obskit.tracing.api import get_tracer
    from obskit.tracing.server_span import start_server_span

    with obskit.testing.isolated():
        span = start_server_span(get_tracer(), "GET", None, {})
        made = span.get_span_context()
        public = SpanContext(
            made.trace_id, made.span_id, made.is_remote, made.trace_flags, made.trace_state
        )
        span.end()
    assert public == made
    assert made.is_valid
    assert not made.is_remote
    assert public.trace_state == made.trace_state
