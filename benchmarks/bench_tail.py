"""Tail sampling: added cost per span (obskit vs Logfire) and error recall vs head sampling.

Usage: ``.venv/bin/python benchmarks/bench_tail.py`` (15-60 s).

Cost: the same workload (traces of one SERVER span and four children; once with one or two
attributes per span, once with the attributes semantic conventions put on a real request) runs
on the same OpenTelemetry SDK TracerProvider three ways, interleaved, medians of repeats: bare
(no processor: the cost of creating and ending the spans), with obskit's ``TailSampler`` (1%
baseline, export lanes to a null exporter), and with Logfire's ``TailSamplingProcessor``
configured by ``SamplingOptions.level_or_duration`` (1% background rate, wrapping a
``BatchSpanProcessor`` to a null exporter, as ``logfire.configure`` wires it). The added cost of
each is its time minus the bare time.

Recall: 20,000 traces with 0.5% errors at a random child, once through obskit's tail sampler and
once through head sampling (``TraceIdRatioBased``) at the ratio that exports the same number of
spans; the share of error traces that reach the exporter.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit.tracing.export import ExportLanes
from obskit.tracing.tail import TailSampler

TRACES_PER_RUN = 1_000
CHILDREN = 4
SPANS_PER_TRACE = CHILDREN + 1
REPEATS = 15
ERROR_LEVEL = 17  # logfire.level_num for "error": how Logfire's sampler recognises errors


class NullExporter(SpanExporter):
    """Counts what it is given; exports nowhere."""

    def __init__(self) -> None:
        self.spans = 0
        self.traces: set[int] = set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        for span in spans:
            self.traces.add(span.context.trace_id)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


LIGHT = (
    {"http.route": "/orders/{id}", "http.request.method": "GET"},
    {"db.system": "pg"},
)
# Attributes a real instrumented request carries (HTTP and database semantic conventions).
SEMCONV = (
    {
        "http.route": "/orders/{id}",
        "http.request.method": "GET",
        "url.scheme": "https",
        "url.path": "/orders/1234",
        "server.address": "shop.example.com",
        "server.port": 443,
        "network.protocol.version": "1.1",
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
        "client.address": "10.1.2.3",
    },
    {
        "db.system": "postgresql",
        "db.namespace": "shop",
        "db.operation.name": "SELECT",
        "db.collection.name": "orders",
        "db.query.text": "SELECT * FROM orders WHERE id = $1",
        "server.address": "db.internal",
        "server.port": 5432,
    },
)


def workload(
    tracer: trace.Tracer,
    n_traces: int,
    errors: set[int] | None = None,
    attributes: tuple[dict[str, Any], dict[str, Any]] = LIGHT,
) -> None:
    """``n_traces`` request-shaped traces; the ones numbered in ``errors`` fail in a child."""
    root_attributes, child_attributes = attributes
    for i in range(n_traces):
        root = tracer.start_span(
            "GET /orders/{id}", kind=SpanKind.SERVER, attributes=root_attributes
        )
        ctx = trace.set_span_in_context(root)
        bad = i % CHILDREN if errors and i in errors else -1
        for j in range(CHILDREN):
            child = tracer.start_span("SELECT orders", context=ctx, attributes=child_attributes)
            if j == bad:
                child.set_status(Status(StatusCode.ERROR))
                child.set_attribute("logfire.level_num", ERROR_LEVEL)
            child.end()
        root.set_attribute("http.response.status_code", 200)
        root.end()


def bare() -> tuple[TracerProvider, Callable[[], None]]:
    provider = TracerProvider(sampler=ALWAYS_ON)
    return provider, lambda: None


def with_obskit(exporter: SpanExporter | None = None) -> tuple[TracerProvider, Callable[[], None]]:
    provider = TracerProvider(sampler=ALWAYS_ON)
    sampler = TailSampler(ExportLanes([exporter or NullExporter()]), baseline_ratio=0.01)
    provider.add_span_processor(sampler)
    return provider, lambda: sampler.shutdown(5.0)


def with_logfire() -> tuple[TracerProvider, Callable[[], None]]:
    from logfire.sampling import SamplingOptions
    from logfire.sampling._tail_sampling import TailSamplingProcessor

    options = SamplingOptions.level_or_duration(
        level_threshold="error", duration_threshold=1.0, background_rate=0.01
    )
    assert options.tail is not None
    inner: SpanProcessor = BatchSpanProcessor(NullExporter())
    processor = TailSamplingProcessor(inner, options.tail)
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(processor)
    return provider, processor.shutdown


VARIANTS: dict[str, Callable[[], tuple[TracerProvider, Callable[[], None]]]] = {
    "bare SDK provider": bare,
    "obskit TailSampler": with_obskit,
    "Logfire TailSamplingProcessor": with_logfire,
}


def time_variant(
    make: Callable[[], tuple[TracerProvider, Callable[[], None]]],
    attributes: tuple[dict[str, Any], dict[str, Any]],
) -> float:
    """Microseconds per span for one run of the workload."""
    provider, close = make()
    tracer = provider.get_tracer("bench")
    workload(tracer, 200, attributes=attributes)  # warm-up
    gc.collect()
    # CPU time of the whole process (every thread, so export workers count too): on a shared
    # machine, time spent waiting for a core is not the variant's cost.
    start = time.process_time()
    workload(tracer, TRACES_PER_RUN, attributes=attributes)
    elapsed = time.process_time() - start
    close()
    return elapsed / (TRACES_PER_RUN * SPANS_PER_TRACE) * 1e6


def cost(attributes: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    deadline = time.monotonic() + 30
    for _ in range(REPEATS):
        for name, make in VARIANTS.items():  # interleaved: contention hits every variant alike
            samples[name].append(time_variant(make, attributes))
        if time.monotonic() > deadline:
            break
    return samples


def recall(n_traces: int = 20_000, error_share: float = 0.005) -> tuple[float, float, float]:
    """Error-trace recall of obskit's tail sampler and of head sampling at the same volume."""
    rng = random.Random(11)
    errors = {i for i in range(n_traces) if rng.random() < error_share}
    tail_out = NullExporter()
    provider, close = with_obskit(tail_out)
    error_ids: set[int] = set()
    tracer = provider.get_tracer("recall")

    class Remember(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.status.status_code is StatusCode.ERROR:
                error_ids.add(span.context.trace_id)

    provider.add_span_processor(Remember())
    workload(tracer, n_traces, errors)
    close()
    tail_recall = len(error_ids & tail_out.traces) / len(error_ids)
    ratio = tail_out.spans / (n_traces * SPANS_PER_TRACE)

    head_out = NullExporter()
    head = TracerProvider(sampler=TraceIdRatioBased(ratio))
    head.add_span_processor(BatchSpanProcessor(head_out, max_queue_size=1 << 20))
    head_errors: set[int] = set()

    class RememberHead(SpanProcessor):
        def on_start(self, span: object, parent_context: object = None) -> None:
            return None

        def on_end(self, span: ReadableSpan) -> None:
            if span.status.status_code is StatusCode.ERROR:
                head_errors.add(span.context.trace_id)

    head.add_span_processor(RememberHead())
    workload(head.get_tracer("recall"), n_traces, errors)
    head.shutdown()
    # Head sampling never records the unsampled error spans, so count errors against the
    # trace list the workload produced (every trace numbered in ``errors`` has one).
    head_recall = len(head_errors & head_out.traces) / len(errors)
    return tail_recall, head_recall, ratio


def main() -> None:
    print(f"# bench_tail: {TRACES_PER_RUN} traces x {SPANS_PER_TRACE} spans per run, "
          f"median of up to {REPEATS} interleaved runs")  # fmt: skip
    print(f"# opentelemetry-sdk {version('opentelemetry-sdk')}, logfire {version('logfire')}, "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    for label, attributes in (("light spans (1-2 attributes)", LIGHT),
                              ("semconv spans (7-9 attributes)", SEMCONV)):  # fmt: skip
        samples = cost(attributes)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        # Contention only ever adds time, so the fastest run of each is a second, steadier view.
        fastest = {name: min(values) for name, values in samples.items()}
        base = medians["bare SDK provider"]
        print()
        print(f"{label}:")
        print()
        print("| variant | µs/span | added µs/span | added ÷ bare span |")
        print("|---|---:|---:|---:|")
        for name, value in medians.items():
            added = value - base
            print(f"| {name} | {value:.2f} | {added:.2f} | {added / base:.3f}x |")
        obskit_added = medians["obskit TailSampler"] - base
        logfire_added = medians["Logfire TailSamplingProcessor"] - base
        print()
        print(f"obskit added cost ÷ bare span cost: {obskit_added / base:.3f}x (goal ≤ 0.15x)")
        print(f"obskit added cost ÷ Logfire added cost: {obskit_added / logfire_added:.3f}x "
              "(goal ≤ 0.5x)")  # fmt: skip
        fast_base = fastest["bare SDK provider"]
        fast_obskit = fastest["obskit TailSampler"] - fast_base
        fast_logfire = fastest["Logfire TailSamplingProcessor"] - fast_base
        print(f"fastest runs: obskit ÷ bare {fast_obskit / fast_base:.3f}x, "
              f"obskit ÷ Logfire {fast_obskit / fast_logfire:.3f}x")  # fmt: skip
    tail_recall, head_recall, ratio = recall()
    print()
    print(f"error-trace recall at the same export volume ({ratio:.2%} of spans): "
          f"obskit tail {tail_recall:.1%}, head sampling {head_recall:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
