"""What ``init()`` wires for traces: provider, resource, propagators, modes, logs and exemplars."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from opentelemetry import baggage, propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client import generate_latest

import obskit
import obskit.testing
from conftest import require_binary
from obskit import _exemplars
from obskit._identity import instance_id
from obskit.tracing import api as tracing_api
from obskit.tracing.tail import RULE, TailSampler


def test_resource_names_the_service_and_its_instance() -> None:
    """Kept spans carry service name, version, environment and the process's service.instance.id
    (the same across a re-init: one process is one instance; a forked worker makes its own)."""
    ids = []
    for _ in range(2):
        exporter = InMemorySpanExporter()
        with obskit.testing.isolated(
            service_name="checkout", service_version="1.2.3", environment="prod",
            span_exporter=exporter, sampling="all",
        ):  # fmt: skip
            obskit.get_tracer().start_span("op").end()
        (span,) = exporter.get_finished_spans()
        resource = span.resource.attributes
        assert ("checkout", "1.2.3", "prod") == (
            resource["service.name"],
            resource["service.version"],
            resource["deployment.environment.name"],
        )
        ids.append(resource["service.instance.id"])
    assert [instance_id(), instance_id()] == ids


def test_tracing_off_keeps_the_noop_tracer() -> None:
    """With tracing off, obskit's tracer is the no-op one and its spans do not record."""
    with obskit.testing.isolated(tracing=False):
        span = obskit.get_tracer().start_span("op")
        assert not span.is_recording()
        assert isinstance(tracing_api.get_tracer(), trace.NoOpTracer)


def test_global_provider_follows_reconfiguration() -> None:
    """Spans from the global OpenTelemetry API go through obskit's sampler, across re-inits."""
    for _ in range(2):
        exporter = InMemorySpanExporter()
        with (
            obskit.testing.isolated(span_exporter=exporter, baseline_ratio=0.0),
            trace.get_tracer("user.code").start_as_current_span("user-op") as span,
        ):
            span.set_status(Status(StatusCode.ERROR))
        assert ["user-op"] == [s.name for s in exporter.get_finished_spans()]


def test_propagators_are_w3c_tracecontext_and_baggage() -> None:
    """The global propagator writes traceparent and baggage headers."""
    with obskit.testing.isolated(), obskit.get_tracer().start_as_current_span("op"):
        ctx = baggage.set_baggage("tenant", "acme")
        headers: dict[str, str] = {}
        propagate.inject(headers, context=ctx)
    assert {"traceparent", "baggage"} <= set(headers)
    assert "tenant=acme" == headers["baggage"]


def test_sampler_is_the_exemplar_gate() -> None:
    """In tail mode the sampler decides exemplars; shutdown restores the immediate gate."""
    with obskit.testing.isolated():
        assert isinstance(_exemplars.gate, TailSampler)
    assert not isinstance(_exemplars.gate, TailSampler)


def test_collector_mode_exports_every_span_untouched() -> None:
    """In collector mode every span is exported and carries no in-process decision."""
    exporter = InMemorySpanExporter()
    with obskit.testing.isolated(sampling="collector", span_exporter=exporter, baseline_ratio=0.0):
        for _ in range(5):
            obskit.get_tracer().start_span("op").end()
    spans = exporter.get_finished_spans()
    assert 5 == len(spans)
    assert all(RULE not in (s.attributes or {}) for s in spans)


class TestLogBuffer:
    def test_debug_lines_follow_the_trace_decision(self) -> None:
        """Held debug lines are written for a kept trace, in order; discarded for a dropped one."""
        with obskit.testing.isolated(log_level="info", baseline_ratio=0.0) as env:
            log = obskit.get_logger("t")
            tracer = obskit.get_tracer()
            with tracer.start_as_current_span("kept") as span:
                log.debug("first")
                log.debug("second")
                span.set_status(Status(StatusCode.ERROR))
            with tracer.start_as_current_span("dropped"):
                log.debug("never")
            log.debug("outside any trace")
            lines = [json.loads(line) for line in env.output_lines()]
            assert ["first", "second"] == [line["event"] for line in lines]
            assert lines[0]["timestamp"] < lines[1]["timestamp"]
            discarded = env.sample("obskit_tail_log_lines_total", {"outcome": "discarded"})
            assert 1.0 == discarded

    def test_lines_inside_a_kept_trace_are_written_at_once(self) -> None:
        """Once the trace is kept, later debug lines of it go straight out."""
        with obskit.testing.isolated(log_level="info", baseline_ratio=0.0) as env:
            log = obskit.get_logger("t")
            tracer = obskit.get_tracer()
            with tracer.start_as_current_span("root"):
                with tracer.start_as_current_span("bad") as bad:
                    bad.set_status(Status(StatusCode.ERROR))
                log.debug("after the error")
                assert ["after the error"] == [
                    json.loads(line)["event"] for line in env.output_lines()
                ]


class TestExportTargets:
    def test_local_sink_gets_kept_spans_and_init_logs_its_path(self, tmp_path: Path) -> None:
        """Without an endpoint, kept spans land as JSON lines in the sink file that init() names."""
        sink = tmp_path / "traces.jsonl"
        with (
            obskit.testing.capture_logs() as logged,
            obskit.testing.isolated(trace_sink=str(sink), baseline_ratio=0.0),
        ):
            with obskit.get_tracer().start_as_current_span("failing") as span:
                span.set_status(Status(StatusCode.ERROR))
            obskit.get_tracer().start_span("ordinary").end()
        records = [json.loads(line) for line in sink.read_text().splitlines()]
        assert ["failing"] == [r["name"] for r in records]
        assert "error" == records[0]["attributes"][RULE]
        assert any(str(sink) in str(line.get("event")) for line in logged)

    def test_console_renderer_prints_kept_spans(self, tmp_path: Path) -> None:
        """trace_console writes one structured line per kept span on the log stream."""
        with obskit.testing.isolated(
            trace_sink=str(tmp_path / "t.jsonl"), trace_console=True, sampling="all"
        ) as env:
            obskit.get_tracer().start_span("visible-op").end()
            obskit.testing.flush()
            lines = [json.loads(line) for line in env.output_lines()]
        printed = [line for line in lines if line["logger"] == "obskit.traces"]
        assert [("visible-op", "all")] == [(line["span_name"], line["rule"]) for line in printed]


def test_self_metrics_pass_promtool() -> None:
    """The obskit_tail_* and obskit_export_* metrics pass promtool's naming checks."""
    promtool = require_binary("promtool")
    with obskit.testing.isolated(log_level="info") as env:
        with obskit.get_tracer().start_as_current_span("op") as span:
            obskit.get_logger("t").debug("held")
            span.set_status(Status(StatusCode.ERROR))
        text = generate_latest(env.registry)
    assert b"obskit_tail_decisions_total" in text
    assert b"obskit_export_spans_total" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_red_exemplars_link_only_kept_traces() -> None:
    """A RED observation's exemplar appears for a kept (5xx) trace, never for a dropped one."""
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    from obskit.metrics.http import server_metrics

    with obskit.testing.isolated(baseline_ratio=0.0) as env:
        metrics = server_metrics()
        assert metrics is not None
        tracer = obskit.get_tracer()
        kept = tracer.start_span("GET /k", kind=trace.SpanKind.SERVER)
        dropped = tracer.start_span("GET /d", kind=trace.SpanKind.SERVER)
        kept_id = kept.get_span_context().trace_id
        dropped_id = dropped.get_span_context().trace_id
        # The middleware records RED before its SERVER span ends: the offers wait.
        metrics.request_finished("GET", "/k", 500, "500", 0.01, trace_id=kept_id)
        metrics.request_finished("GET", "/d", 200, "", 0.01, trace_id=dropped_id)
        assert f"{kept_id:032x}" not in openmetrics(env.registry).decode()
        kept.set_attribute("http.response.status_code", 500)
        kept.end()
        dropped.end()
        text = openmetrics(env.registry).decode()
    assert f'trace_id="{kept_id:032x}"' in text
    assert f"{dropped_id:032x}" not in text
