"""The global provider obskit installs behaves like the SDK's for application code."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import obskit
from obskit.tracing import provider


def test_application_processor_survives_reconfiguration() -> None:
    """add_span_processor on the global provider works, and keeps working after init() again."""
    obskit.init(service_name="a", log_stream="stderr", collectors="none")
    # No test sets a global provider of its own, so obskit's switch is the global one.
    assert trace.get_tracer_provider() is provider._SWITCH
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    trace.get_tracer_provider().add_span_processor(processor)  # type: ignore[attr-defined]
    try:
        with trace.get_tracer("app").start_as_current_span("first"):
            pass
        obskit.init(service_name="b", log_stream="stderr", collectors="none")
        with trace.get_tracer("app").start_as_current_span("second"):
            pass
        assert ["first", "second"] == [span.name for span in exporter.get_finished_spans()]
    finally:
        provider._SWITCH._added.remove(processor)
