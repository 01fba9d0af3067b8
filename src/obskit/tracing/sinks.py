"""Where kept spans go without a collector: a rotating JSON-lines file, and the console.

The local sink lets a newcomer see kept traces with zero set-up: one JSON object per span in a
file whose path ``init()`` logs. It is bounded: past ``max_bytes`` the file is renamed to
``<path>.1`` (replacing the previous one) and a new one started, so at most two files exist.
Several worker processes may share the path: each line is one ``write`` on a file opened for
appending, and a process that finds the path rotated by another reopens it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from obskit import _locks

__all__ = ["CONSOLE_LOGGER", "ConsoleRenderer", "JsonLinesSink", "default_sink_path", "span_record"]

CONSOLE_LOGGER = "obskit.traces"

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def default_sink_path(service_name: str) -> str:
    """``<tmp>/obskit-<service>-traces.jsonl``, the service name reduced to safe characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", service_name)[:64] or "service"
    return os.path.join(tempfile.gettempdir(), f"obskit-{safe}-traces.jsonl")


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A JSON-ready view of a span: ids in hex, times in ns and ms, attributes and events."""
    context = span.context
    parent = span.parent
    start = span.start_time or 0
    end = span.end_time or start
    resource = span.resource.attributes
    return {
        "trace_id": format_trace_id(context.trace_id) if context else None,
        "span_id": format_span_id(context.span_id) if context else None,
        "parent_span_id": format_span_id(parent.span_id) if parent else None,
        "trace_state": context.trace_state.to_header() if context else "",
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "service": resource.get("service.name"),
        "service_instance": resource.get("service.instance.id"),
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": {k: _plain(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    }


class JsonLinesSink(SpanExporter):
    """A span exporter writing one JSON line per span to a bounded, rotating file."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = _locks.lock()
        self._file: IO[bytes] | None = None
        self._inode: int | None = None

    def _open(self) -> IO[bytes]:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        handle = open(self.path, "ab")  # noqa: SIM115 - kept open across exports
        self._inode = os.fstat(handle.fileno()).st_ino
        return handle

    def _current(self) -> IO[bytes]:
        handle = self._file
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if handle is not None and (stat is None or stat.st_ino != self._inode):
            handle.close()  # another process rotated the file: follow the path
            handle = None
        if stat is not None and stat.st_size >= self.max_bytes:
            if handle is not None:
                handle.close()
                handle = None
            try:
                os.replace(self.path, self.path + ".1")
            except FileNotFoundError:
                pass  # another process rotated it first
        if handle is None:
            handle = self._open()
            self._file = handle
        return handle

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the spans; FAILURE (counted by the export lanes) if the file cannot be written."""
        data = b"".join(
            json.dumps(span_record(span), separators=(",", ":"), default=str).encode() + b"\n"
            for span in spans
        )
        try:
            with self._lock:
                handle = self._current()
                handle.write(data)
                handle.flush()
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is flushed as it is written."""
        return True


class ConsoleRenderer(SpanExporter):
    """Writes one log line per kept span through obskit's log chain (opt-in: ``trace_console``).

    The line is a structured ``trace.span`` event of the ``obskit.traces`` logger, so it is JSON in
    a JSON log stream and a readable line on a terminal, like every other line. Its ids are the
    span's, given as fields (the export worker runs outside any trace).
    """

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        if emit is None:
            from obskit.logs import setup as log_setup

            info = log_setup.get_logger(CONSOLE_LOGGER).info

            def emit(fields: dict[str, Any]) -> None:
                info("trace.span", **fields)

        self._emit = emit

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """One line per span: trace, span, parent, name, kind, duration, status, rule, weight."""
        for span in spans:
            record = span_record(span)
            attrs = record["attributes"]
            self._emit(
                {
                    "trace_id": record["trace_id"],
                    "span_id": record["span_id"],
                    "parent_span_id": record["parent_span_id"],
                    "span_name": record["name"],
                    "span_kind": record["kind"],
                    "duration_ms": record["duration_ms"],
                    "status": record["status"],
                    "rule": attrs.get("obskit.sampling.rule"),
                    "weight": attrs.get("obskit.sampling.adjusted_count"),
                }
            )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Lines are written at once."""
        return True
