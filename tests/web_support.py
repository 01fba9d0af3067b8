"""Helpers shared by the web tests: an in-memory span exporter installed as obskit's tracer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from obskit.tracing.api import set_tracer


class Spans:
    """Finished spans captured while the block runs."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[ReadableSpan]:
        """Every span ended so far."""
        return list(self.exporter.get_finished_spans())

    def servers(self) -> list[ReadableSpan]:
        """The SERVER spans ended so far."""
        return [s for s in self.finished() if s.kind.name == "SERVER"]


@contextmanager
def capture_spans() -> Iterator[Spans]:
    """Install an SDK tracer with an in-memory exporter as obskit's tracer for the block."""
    spans = Spans()
    set_tracer(spans.provider.get_tracer("obskit-tests"))
    try:
        yield spans
    finally:
        set_tracer(None)
        spans.provider.shutdown()


def http_scope(path: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A plain ASGI HTTP scope for ``GET path`` from 127.0.0.1 (header names lower-cased)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
