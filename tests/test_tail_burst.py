"""A burst that outlasts the slow threshold, with a slow exporter: every error trace gets out."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

import obskit
from obskit import _runtime
from obskit.tracing.tail import RULE
from web_support import http_scope

REQUESTS = 6_000
SPANS_PER_REQUEST = 10  # the SERVER root and 9 children: 60,000 spans
ERROR_EVERY = 100  # 1%: 60 error traces


class SlowExporter(SpanExporter):
    """An in-memory exporter that takes ``delay`` seconds a batch (a collector under load)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.spans: list[ReadableSpan] = []
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(self.delay)
        with self.lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def by_trace(self) -> dict[int, list[ReadableSpan]]:
        with self.lock:
            spans = list(self.spans)
        traces: dict[int, list[ReadableSpan]] = {}
        for span in spans:
            traces.setdefault(span.context.trace_id, []).append(span)
        return traces


async def _handler(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A request of 9 child spans, interleaved with every other request; 1 in 100 fails."""
    tracer = obskit.get_tracer("burst")
    failing = int(scope["path"].rsplit("/", 1)[1]) % ERROR_EVERY == 0
    for n in range(SPANS_PER_REQUEST - 1):
        with tracer.start_as_current_span(f"step-{n}") as span:
            if failing and n == 4:
                span.set_status(Status(StatusCode.ERROR, "the dependency failed"))
        await asyncio.sleep(0)
    status = 500 if failing else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


async def _burst(app: Any) -> list[int]:
    """All requests at once; returns the trace id of each failing one."""
    failing: list[int] = []

    async def one(i: int) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 500:
                failing.append(trace.get_current_span().get_span_context().trace_id)

        await app(http_scope(f"/orders/{i}"), receive, send)

    await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return failing


@pytest.mark.timeout(240)
def test_every_error_trace_of_a_burst_reaches_a_slow_exporter() -> None:
    """6,000 concurrent requests (60,000 spans, 1% failing) against an exporter taking 0.2 s a
    batch: all 60 error traces are exported, root included, in the error lane."""
    exporter = SlowExporter(0.2)
    obskit.init(
        service_name="burst", span_exporter=exporter, collectors="none", log_stream="stderr"
    )
    runtime = _runtime.current()
    assert runtime is not None
    sampler = runtime.components["tracing"].sampler  # type: ignore[attr-defined]
    app = obskit.ASGIMiddleware(_handler)
    started = time.monotonic()
    failing = asyncio.run(_burst(app))
    burst_s = time.monotonic() - started
    assert REQUESTS // ERROR_EVERY == len(failing)

    def roots_out() -> int:
        exported = exporter.by_trace()
        return sum(any(s.kind is SpanKind.SERVER for s in exported.get(tid, ())) for tid in failing)

    # Error lane first: the error traces leave before the slow ones still queued.
    deadline = time.monotonic() + 120  # a bound on the wait, not an assertion on speed
    while roots_out() < len(failing) and time.monotonic() < deadline:
        time.sleep(0.2)
    exported = exporter.by_trace()
    stats = sampler.stats()
    lanes = runtime.components["tracing"].lanes  # type: ignore[attr-defined]
    counts = {k: dict(v) for k, v in lanes.counts.items()}
    obskit.shutdown(timeout=1.0)
    summary = f"burst {burst_s:.1f} s, lanes {counts}, evictions {stats['evictions']}"
    after_error = {f"step-{n}" for n in range(4, SPANS_PER_REQUEST - 1)}
    whole = 0
    for trace_id in failing:
        spans = exported.get(trace_id, [])
        roots = [s for s in spans if s.kind is SpanKind.SERVER]
        assert 1 == len(roots), f"an error trace without its root: {summary}"
        assert 500 == (roots[0].attributes or {})["http.response.status_code"]
        # The failing span, every later one and the root wait in the error lane, with its rule.
        later = {s.name: (s.attributes or {})[RULE] for s in spans if s.name in after_error}
        assert after_error == set(later), summary
        assert {"error", "server_error"} >= {*later.values(), (roots[0].attributes or {})[RULE]}
        whole += SPANS_PER_REQUEST == len(spans)
    # Spans that ended before the error are exported too, unless the buffer's byte cap forced
    # their trace out earlier (as slow) and the queue, full of slow spans, had no room for them.
    forced_then_dropped = stats["evictions"].get("bytes", 0) and counts["dropped"]["slow"]
    assert whole == len(failing) or forced_then_dropped, summary
    assert 0 == counts["dropped"]["error"], summary
