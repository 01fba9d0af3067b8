"""Kept spans on their way out: the OTLP wire, the priority lane, fork and shutdown."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

import obskit
import obskit.testing
from obskit import _runtime
from obskit.tracing.export import LOST_AT_SHUTDOWN, ExportLanes
from obskit.tracing.policies import LANE_BASELINE as BASELINE
from obskit.tracing.policies import LANE_ERROR as ERROR
from obskit.tracing.policies import LANE_RULE
from obskit.tracing.policies import LANE_SLOW as SLOW
from obskit.tracing.tail import ADJUSTED_COUNT, RULE, TRIGGER


class _Receiver(BaseHTTPRequestHandler):
    requests: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).requests.append(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A loopback OTLP/HTTP receiver on a free port, decoding every request."""
    handler = type("Receiver", (_Receiver,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value"))


def test_spans_over_the_otlp_wire_carry_rule_trigger_and_weight(
    otlp_receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    """Kept spans decoded from real OTLP/HTTP protobuf carry the rule, trigger and th weight."""
    endpoint, requests = otlp_receiver
    obskit.init(otlp_endpoint=endpoint, baseline_ratio=0.25, log_stream="stderr")
    tracer = obskit.get_tracer()
    with tracer.start_as_current_span("failing") as span:
        span.set_status(Status(StatusCode.ERROR))
    # A trace arriving with a traceparent whose randomness passes the 25% baseline.
    carrier = {"traceparent": "00-000000000000000000ffffffffffffff-00000000000000aa-01"}
    tracer.start_span("baseline", context=propagate.extract(carrier)).end()
    obskit.shutdown(timeout=10)

    spans = {
        span.name: span
        for request in requests
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }
    assert {"failing", "baseline"} == set(spans)
    failing = {kv.key: _value(kv.value) for kv in spans["failing"].attributes}
    assert ("error", "span_end", 1.0) == (failing[RULE], failing[TRIGGER], failing[ADJUSTED_COUNT])
    assert "ot=th:0" == spans["failing"].trace_state
    baseline = {kv.key: _value(kv.value) for kv in spans["baseline"].attributes}
    assert ("baseline", 4.0) == (baseline[RULE], baseline[ADJUSTED_COUNT])
    assert "ot=th:c" == spans["baseline"].trace_state


class _Gated(SpanExporter):
    """An exporter stuck until released: a collector that has stopped answering."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.names: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        self.names.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _spans(name: str, n: int) -> list[ReadableSpan]:
    return [ReadableSpan(name) for _ in range(n)]


def test_error_spans_are_not_lost_behind_a_full_queue_of_lower_lanes() -> None:
    """With export stalled and the queue full, errors push out slow and baseline spans (lowest
    lane first, newest first), slow push out baseline, and every span that goes is counted."""
    exporter = _Gated()
    lanes = ExportLanes([exporter], capacity=40, batch_size=5)
    lanes.submit(_spans("first", 5), BASELINE)  # a full batch: the worker takes it...
    assert exporter.entered.wait(10)  # ...and is stuck exporting it
    lanes.submit(_spans("baseline", 30), BASELINE)
    lanes.submit(_spans("slow", 30), SLOW)  # 10 fit, 20 push out baseline spans
    assert {"error": 0, "rule": 0, "slow": 0, "baseline": 20} == lanes.counts["dropped"]
    lanes.submit(_spans("error", 30), ERROR)  # 10 baseline out, then 20 slow
    assert {"error": 0, "rule": 0, "slow": 20, "baseline": 30} == lanes.counts["dropped"]
    lanes.submit(_spans("late-slow", 5), SLOW)  # no lower lane left to take room from
    lanes.submit(_spans("more-errors", 15), ERROR)  # 10 slow out; the last 5 errors do not fit
    assert {"error": 5, "rule": 0, "slow": 35, "baseline": 30} == lanes.counts["dropped"]
    assert {"error": 40, "rule": 0, "slow": 0, "baseline": 0} == lanes.queued()
    exporter.release.set()
    assert lanes.force_flush(10)
    assert 30 == exporter.names.count("error")
    assert 10 == exporter.names.count("more-errors")
    assert 0 == exporter.names.count("slow") + exporter.names.count("baseline")
    assert {"error": 40, "rule": 0, "slow": 0, "baseline": 5} == lanes.counts["exported"]
    lanes.shutdown(1)


def test_the_worker_takes_the_first_lanes_first() -> None:
    """Queued spans leave error first, then rule, slow and baseline, whatever the arrival order."""
    exporter = _Gated()
    lanes = ExportLanes([exporter], batch_size=4)
    lanes.submit(_spans("first", 4), BASELINE)
    assert exporter.entered.wait(10)
    arrivals = [("baseline", BASELINE), ("slow", SLOW), ("rule", LANE_RULE), ("error", ERROR)]
    for name, lane in arrivals:
        lanes.submit(_spans(name, 3), lane)
    exporter.release.set()
    assert lanes.force_flush(10)
    order = list(exporter.names[4:])
    assert ["error"] * 3 + ["rule"] * 3 + ["slow"] * 3 + ["baseline"] * 3 == order
    lanes.shutdown(1)


def test_shutdown_returns_within_its_timeout_with_nothing_buffered() -> None:
    """shutdown(timeout) decides every pending trace and returns in time despite a stuck export."""
    exporter = _Gated()
    obskit.init(span_exporter=exporter, baseline_ratio=1.0, log_stream="stderr")
    runtime = _runtime.current()
    assert runtime is not None
    sampler = runtime.components["tracing"].sampler  # type: ignore[attr-defined]
    tracer = obskit.get_tracer()
    roots = [tracer.start_span(f"running-{i}") for i in range(50)]
    for root in roots[:25]:
        root.end()  # kept by the 100% baseline, queued behind the stuck exporter
    started = time.monotonic()
    obskit.shutdown(timeout=1.0)
    elapsed = time.monotonic() - started
    exporter.release.set()
    assert (0, 0, 0) == sampler.buffered()
    assert elapsed < 1.0 + 0.5, elapsed


@pytest.fixture
def hanging_collector() -> Iterator[tuple[str, threading.Event]]:
    """A loopback HTTP server that accepts connections, reads, and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            accepted.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_shutdown_against_a_hanging_collector_counts_and_says_what_was_lost(
    hanging_collector: tuple[str, threading.Event],
) -> None:
    """Against a collector that never answers, shutdown(2 s) returns on time; the batch in flight
    and the queued spans are counted in a counter that outlives the runtime, and one warning line
    says how many were lost, where."""
    endpoint, accepted = hanging_collector
    before = dict(LOST_AT_SHUTDOWN)
    with obskit.testing.isolated(otlp_endpoint=endpoint) as env:
        tracer = obskit.get_tracer()
        for i in range(3_000):  # error traces, kept at once: the error lane
            with tracer.start_as_current_span(f"failed-{i}") as span:
                span.set_status(Status(StatusCode.ERROR))
        assert accepted.wait(10)  # the first batch is on its way, unanswered
        started = time.monotonic()
        obskit.shutdown(timeout=2.0)
        elapsed = time.monotonic() - started
        warnings_ = [line for line in env.logs if "were not exported" in str(line.get("event"))]
    lost = {k: v - before.get(k, 0) for k, v in LOST_AT_SHUTDOWN.items()}
    assert elapsed <= 2.0 + 0.5, elapsed
    in_flight = lost.get(("error", "in_flight"), 0)
    assert 0 < in_flight <= 512, lost  # one batch (512 at most), sent and never answered
    assert 3_000 == in_flight + lost.get(("error", "queued"), 0), lost
    assert 1 == len(warnings_), env.logs
    assert "warning" == warnings_[0]["level"]
    assert "3000 spans" in warnings_[0]["event"]
    assert f"in flight to the exporter, unconfirmed: error {in_flight};" in warnings_[0]["event"]
    # The next runtime's scrape still shows what the last shutdown lost.
    with obskit.testing.isolated(collectors="none") as later:
        sample = later.sample(
            "obskit_export_lost_at_shutdown_spans_total", {"lane": "error", "stage": "in_flight"}
        )
    assert sample is not None
    assert sample >= in_flight


def test_forked_child_samples_and_exports(tmp_path: Path) -> None:
    """After os.fork() the child keeps its own error trace, exported with a new instance id."""
    sink = tmp_path / "traces.jsonl"
    obskit.init(trace_sink=str(sink), baseline_ratio=0.0, log_stream="stderr")
    with obskit.get_tracer().start_as_current_span("parent-error") as span:
        span.set_status(Status(StatusCode.ERROR))
    pending = obskit.get_tracer().start_span("parent-pending")  # undecided at fork time
    obskit.testing.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: sample, export, and leave without running pytest's teardown
        code = 1
        try:
            tracer = obskit.get_tracer()
            with tracer.start_as_current_span("child-error") as child:
                child.set_status(Status(StatusCode.ERROR))
            tracer.start_span("child-ordinary").end()
            obskit.shutdown(timeout=5)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert 0 == os.waitstatus_to_exitcode(status)
    pending.end()
    obskit.shutdown(timeout=5)
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    by_name = {r["name"]: r for r in records}
    assert {"parent-error", "child-error"} == set(by_name)
    assert by_name["parent-error"]["service_instance"] != by_name["child-error"]["service_instance"]


def test_local_sink_rotates_and_stays_bounded(tmp_path: Path) -> None:
    """Past max_bytes the sink moves the file to .1 and starts again: at most two files."""
    from obskit.tracing.sinks import JsonLinesSink

    path = tmp_path / "kept.jsonl"
    sink = JsonLinesSink(str(path), max_bytes=2_000)
    for i in range(40):
        assert SpanExportResult.SUCCESS == sink.export([ReadableSpan(f"span-{i}")])
    sink.shutdown()
    assert {"kept.jsonl", "kept.jsonl.1"} == {p.name for p in tmp_path.iterdir()}
    for file in tmp_path.iterdir():
        assert file.stat().st_size < 2_000 + 1_000  # one line past the limit at most
    names = [json.loads(line)["name"] for line in path.read_text().splitlines()]
    assert "span-39" == names[-1]


def test_missing_otlp_extra_falls_back_to_the_local_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint without the OTLP exporter installed warns and keeps spans in the local sink."""
    import sys

    from obskit._config import load_settings
    from obskit.tracing.export import build_exporters
    from obskit.tracing.sinks import JsonLinesSink

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    settings = load_settings(
        {"otlp_endpoint": "http://127.0.0.1:4318", "trace_sink": str(tmp_path / "t.jsonl")}
    )
    exporters, where = build_exporters(settings)
    assert [JsonLinesSink] == [type(e) for e in exporters]
    assert where.startswith("local file")
