"""Export of kept spans: two bounded lanes in front of the exporter, and the exporter's choice.

The SDK's ``BatchSpanProcessor`` drops silently when its queue is full, and a burst of ordinary
baseline traffic could then push out the error traces that are the point of tail sampling.
:class:`ExportLanes` keeps two queues: a *priority* lane for certain keeps (errors, slow,
rules) and a *baseline* lane. The worker always drains the priority lane first, a full baseline
lane can never take room from it, and every span that does not fit is counted per lane.

:func:`build_exporters` picks OTLP over HTTP/protobuf (or gRPC, an optional extra) when an
endpoint is configured, otherwise the embedded local sink (:mod:`obskit.tracing.sinks`).

Exporting is obskit's own work: the worker runs under :func:`obskit._selfcalls.quiet`, so the
exporter's HTTP calls produce no span (an export failing would otherwise be an error trace, kept,
exported and failing again), no metric and no propagation header.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from obskit import _guard, _locks, _selfcalls
from obskit._config import Settings
from obskit._identity import DISTRIBUTION

__all__ = ["LANES", "TAPS", "ExportLanes", "KeptSink", "build_exporters", "otlp_traces_url"]

LANES = ("priority", "baseline")
# Lists that receive every kept span as it is queued, whichever lanes are live
# (``obskit.testing.capture_spans``).
TAPS: list[list[ReadableSpan]] = []
_log = logging.getLogger("obskit.tracing")


class KeptSink(Protocol):
    """Where kept spans go (the export lanes)."""

    def submit(self, spans: Sequence[ReadableSpan], priority: bool) -> None:
        """Queue spans for export; ``priority`` for certain keeps (errors, slow, rules)."""

    def force_flush(self, timeout: float) -> bool:
        """Export everything queued within ``timeout`` seconds."""

    def shutdown(self, timeout: float) -> None:
        """Flush within ``timeout`` and stop."""

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue and threads."""


class ExportLanes:
    """Priority and baseline queues drained by one worker thread into the exporters."""

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        priority_capacity: int = 16_384,
        baseline_capacity: int = 4_096,
        batch_size: int = 512,
        delay_s: float = 1.0,
    ) -> None:
        self._exporters = tuple(exporters)
        self._capacity = {"priority": priority_capacity, "baseline": baseline_capacity}
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._init_state()

    def _init_state(self) -> None:
        self._cond = _locks.condition()
        self._queues: dict[str, collections.deque[ReadableSpan]] = {
            lane: collections.deque() for lane in LANES
        }
        self.counts: dict[str, dict[str, int]] = {
            outcome: dict.fromkeys(LANES, 0) for outcome in ("exported", "failed", "dropped")
        }
        self._inflight = 0
        self._flushes = 0
        self._stopping = False
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None

    def _ensure_worker(self) -> None:
        # Fallback for a fork the at-fork hook did not cover: threads do not survive a fork.
        if self._pid != os.getpid():
            self._init_state()
        if self._thread is None and not self._stopping:
            thread = threading.Thread(target=self._run, name="obskit-span-export", daemon=True)
            self._thread = thread
            thread.start()

    def submit(self, spans: Sequence[ReadableSpan], priority: bool) -> None:
        """Queue kept spans; what does not fit in its lane is dropped and counted."""
        if TAPS:
            for tap in list(TAPS):
                tap.extend(spans)
        lane = "priority" if priority else "baseline"
        with self._cond:
            if self._stopping:
                self.counts["dropped"][lane] += len(spans)
                return
            self._ensure_worker()
            queue = self._queues[lane]
            room = self._capacity[lane] - len(queue)
            if room < len(spans):
                self.counts["dropped"][lane] += len(spans) - max(room, 0)
                spans = spans[: max(room, 0)]
            queue.extend(spans)
            if sum(len(q) for q in self._queues.values()) >= self._batch_size:
                self._cond.notify_all()

    def queued(self) -> dict[str, int]:
        """Spans waiting per lane."""
        with self._cond:
            return {lane: len(queue) for lane, queue in self._queues.items()}

    def _take(self) -> list[tuple[str, list[ReadableSpan]]]:
        batch: list[tuple[str, list[ReadableSpan]]] = []
        room = self._batch_size
        for lane in LANES:  # priority first, always
            queue = self._queues[lane]
            taken = [queue.popleft() for _ in range(min(room, len(queue)))]
            if taken:
                batch.append((lane, taken))
                room -= len(taken)
        return batch

    def _run(self) -> None:
        with _selfcalls.quiet():
            self._drain()

    def _drain(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._delay_s
                while (
                    not self._stopping
                    and not self._flushes
                    and sum(len(q) for q in self._queues.values()) < self._batch_size
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = self._take()
                if not batch:
                    self._flushes = 0
                    self._cond.notify_all()
                    if self._stopping:
                        return
                    continue
                self._inflight = sum(len(spans) for _, spans in batch)
            try:
                for lane, spans in batch:
                    self._export(lane, spans)
            finally:
                with self._cond:
                    self._inflight = 0
                    self._cond.notify_all()

    def _export(self, lane: str, spans: list[ReadableSpan]) -> None:
        ok = True
        for exporter in self._exporters:
            try:
                result = exporter.export(spans)
            except Exception as exc:  # an exporter bug must not stop the worker
                _log.debug("span exporter %r raised", exporter, exc_info=exc)
                result = SpanExportResult.FAILURE
            ok = ok and result is SpanExportResult.SUCCESS
        with self._cond:
            self.counts["exported" if ok else "failed"][lane] += len(spans)

    def force_flush(self, timeout: float) -> bool:
        """Export everything queued now; False if ``timeout`` seconds were not enough."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None and not any(self._queues.values()):
                return True
            self._ensure_worker()
            self._flushes += 1
            self._cond.notify_all()
            while any(self._queues.values()) or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> None:
        """Flush within ``timeout``, stop the worker and shut the exporters down."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stopping:
                return  # already shut down
        self.force_flush(timeout)
        with self._cond:
            self._stopping = True
            for lane, queue in self._queues.items():
                self.counts["dropped"][lane] += len(queue)
                queue.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        with _selfcalls.quiet():  # an exporter may send what it still holds
            for exporter in self._exporters:
                try:
                    exporter.shutdown()
                except Exception as exc:
                    _guard.report("tracing.exporter_shutdown", exc)

    def after_fork_in_child(self) -> None:
        """Start empty in a forked child: the parent exports its own queue."""
        self._init_state()


def otlp_traces_url(settings: Settings) -> str | None:
    """The traces URL: a signal-specific endpoint as given, a base one with ``/v1/traces``."""
    endpoint = settings.otlp_endpoint
    if not endpoint or settings.otlp_protocol == "grpc":
        return endpoint
    source = settings.sources.get("otlp_endpoint", "")
    if source == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
        return endpoint
    if source == "kwarg":
        # A keyword argument may be either: a URL without a path is a base endpoint.
        from urllib.parse import urlsplit

        if urlsplit(endpoint).path not in ("", "/"):
            return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def _otlp_exporter(settings: Settings) -> SpanExporter | None:
    """The OTLP exporter, or None (with a warning) when its optional extra is not installed."""
    url = otlp_traces_url(settings)
    try:
        if settings.otlp_protocol == "grpc":
            # An optional extra: grpcio is large, compiled and only wanted by some.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            return GrpcExporter(endpoint=url)  # type: ignore[no-any-return]
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=url)
    except ImportError:
        extra = "grpc" if settings.otlp_protocol == "grpc" else "otlp"
        _log.warning(
            "obskit: otlp_endpoint is set but the OTLP %s exporter is not installed "
            "(pip install '%s[%s]'); kept spans go to the local sink instead",
            settings.otlp_protocol,
            DISTRIBUTION,
            extra,
        )
        return None


def build_exporters(settings: Settings, write_line: Any = None) -> tuple[list[SpanExporter], str]:
    """The exporters for ``settings`` and a one-line description of where spans go."""
    exporters: list[SpanExporter] = []
    custom = settings.extras.get("span_exporter")
    if custom is not None:
        exporters.append(custom)
        where = f"exporter {type(custom).__name__}"
    elif settings.otlp_endpoint and (otlp := _otlp_exporter(settings)) is not None:
        exporters.append(otlp)
        where = f"OTLP {settings.otlp_protocol} {otlp_traces_url(settings)}"
    else:
        from obskit.tracing.sinks import JsonLinesSink, default_sink_path

        path = settings.trace_sink or default_sink_path(settings.service_name)
        exporters.append(JsonLinesSink(path))
        where = f"local file {path}"
    if settings.trace_console:
        from obskit.tracing.sinks import ConsoleRenderer

        exporters.append(ConsoleRenderer(write_line))
        where += " and the console"
    return exporters, where
