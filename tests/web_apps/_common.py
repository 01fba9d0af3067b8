"""Shared by the test services: obskit initialised from the environment, spans to a file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import obskit
from obskit.tracing.api import set_tracer


class FileSpanExporter(SpanExporter):
    """Writes each finished span as one JSON line (what the tests read back)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                parent = span.parent
                record = {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": f"{span.context.trace_id:032x}",
                    "span_id": f"{span.context.span_id:016x}",
                    "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
                    "attributes": dict(span.attributes or {}),
                }
                self._file.write(json.dumps(record) + "\n")
        return SpanExportResult.SUCCESS


def setup() -> None:
    """init() from the environment; with OBSKIT_TEST_SPANS set, spans go to that file."""
    obskit.init(log_format="json")
    path = os.environ.get("OBSKIT_TEST_SPANS")
    if path:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(path)))
        set_tracer(provider.get_tracer("obskit-test-service"))
