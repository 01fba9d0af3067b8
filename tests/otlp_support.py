"""A real OTLP/HTTP receiver on loopback that decodes the protobuf wire format it is sent."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


@dataclass
class Received:
    """What the receiver was sent: each POST's headers (lower-cased names) and decoded spans."""

    headers: list[dict[str, str]] = field(default_factory=list)
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The protobuf bodies as sent (uncompressed), to search for bytes that must not be there.
    bodies: list[bytes] = field(default_factory=list)

    def raw(self) -> bytes:
        """Every body received, concatenated."""
        with self.lock:
            return b"".join(self.bodies)

    def spans(self) -> list[Span]:
        """Every span in every request, in arrival order."""
        with self.lock:
            return [
                span
                for request in self.requests
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]


class _Handler(BaseHTTPRequestHandler):
    received: Received

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.received.lock:
            self.received.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.received.requests.append(request)
            self.received.bodies.append(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class EncodingExporter(SpanExporter):
    """Encodes what it is given exactly as the OTLP exporters do, into :attr:`received`
    (the OTLP wire format without the HTTP round trip)."""

    def __init__(self) -> None:
        self.received = Received()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode the spans to OTLP protobuf bytes and decode them back."""
        body = encode_spans(spans).SerializeToString()
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.received.lock:
            self.received.bodies.append(body)
            self.received.requests.append(request)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def value_of(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue`` (arrays as lists)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes_of(span: Span) -> dict[str, Any]:
    """A decoded span's attributes as a dict."""
    return {kv.key: value_of(kv.value) for kv in span.attributes}


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """Run a receiver on a free loopback port: yields its base URL and what it received."""
    received = Received()
    handler = type("Handler", (_Handler,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
