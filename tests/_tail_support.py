"""Shared pieces for the tail-sampling tests: a synchronous sink and a wired SDK provider."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from obskit.tracing.policies import LANES
from obskit.tracing.tail import TailSampler

SECOND = 1_000_000_000
MS = 1_000_000


class ListSink:
    """A KeptSink that keeps what it is given, with the lane each batch went to."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.lanes: list[str] = []

    def submit(self, spans: Sequence[ReadableSpan], lane: int) -> None:
        self.spans.extend(spans)
        self.lanes.extend([LANES[lane]] * len(spans))

    def force_flush(self, timeout: float) -> bool:
        return True

    def shutdown(self, timeout: float, undecided: int = 0) -> None:
        return None

    def after_fork_in_child(self) -> None:
        return None

    def by_trace(self) -> dict[int, list[ReadableSpan]]:
        traces: dict[int, list[ReadableSpan]] = {}
        for span in self.spans:
            traces.setdefault(span.context.trace_id, []).append(span)
        return traces


def tail_provider(**options: Any) -> tuple[trace.Tracer, TailSampler, ListSink]:
    """A TracerProvider with a TailSampler (no tick thread unless asked) feeding a ListSink."""
    sink = ListSink()
    options.setdefault("background", False)
    sampler = TailSampler(sink, **options)
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(sampler)
    return provider.get_tracer("test"), sampler, sink


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict."""
    return dict(span.attributes or {})
