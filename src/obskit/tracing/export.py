"""Export of kept spans: lanes by rank in front of the exporter, and the exporter's choice.

The SDK's ``BatchSpanProcessor`` drops silently when its queue is full, and a burst of ordinary
traffic could then push out the error traces that are the point of tail sampling.
:class:`ExportLanes` queues kept spans in four lanes of one bounded queue, by the rule that kept
their trace (:data:`obskit.tracing.policies.LANES`): **error** (errors, 5xx), **rule** (attribute
rules, ``keep_if``), **slow**, **baseline**. The worker always takes a batch from the first
lanes first; when the queue is full, a span of a higher lane pushes out the newest span of the
lowest lane below it, and a span that finds no lower lane to take room from is dropped. So errors
outrank slow traces and slow traces outrank the baseline, however the queue filled; every span
dropped or pushed out is counted per lane, and so is what a shutdown could not send (see
:data:`LOST_AT_SHUTDOWN`).

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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from obskit import _guard, _locks, _selfcalls
from obskit._config import Settings
from obskit._identity import DISTRIBUTION
from obskit.tracing.policies import LANES

__all__ = [
    "LANES",
    "LOST_AT_SHUTDOWN",
    "TAPS",
    "ExportLanes",
    "KeptSink",
    "build_exporters",
    "otlp_traces_url",
]

# Lists that receive every kept span as it is queued, whichever lanes are live
# (``obskit.testing.capture_spans``).
TAPS: list[list[ReadableSpan]] = []
# Kept spans a shutdown could not export in time, by (lane, stage): "in_flight" (handed to the
# exporter, which had not answered by the deadline) or "queued". Process-wide plain numbers, like
# the internal-error counts: the shutdown that loses them also unregisters the lanes' collector,
# so they outlive it (a later runtime exposes them) and the shutdown logs them.
LOST_AT_SHUTDOWN: dict[tuple[str, str], int] = {}
_log = logging.getLogger("obskit.tracing")


class KeptSink(Protocol):
    """Where kept spans go (the export lanes)."""

    def submit(self, spans: Sequence[ReadableSpan], lane: int) -> None:
        """Queue spans for export in ``lane`` (an index into :data:`LANES`, 0 ranks first)."""

    def force_flush(self, timeout: float) -> bool:
        """Export everything queued within ``timeout`` seconds."""

    def shutdown(self, timeout: float, undecided: int = 0) -> None:
        """Flush within ``timeout`` and stop; ``undecided`` spans were lost before reaching it."""

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue and threads."""


class ExportLanes:
    """One bounded queue in ranked lanes, drained by one worker thread into the exporters.

    ``scrub`` (the redaction policy's :class:`~obskit.tracing.scrub.SpanScrubber`) cleans each
    batch on the worker before any exporter sees it, and each span a capture tap receives.
    """

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        capacity: int = 20_480,
        batch_size: int = 512,
        delay_s: float = 1.0,
        scrub: Callable[[Sequence[ReadableSpan]], Sequence[ReadableSpan]] | None = None,
    ) -> None:
        self._exporters = tuple(exporters)
        self._scrub = scrub
        self._capacity = capacity
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._init_state()

    def _init_state(self) -> None:
        self._cond = _locks.condition()
        self._queues: list[collections.deque[ReadableSpan]] = [collections.deque() for _ in LANES]
        self._queued = 0
        self.counts: dict[str, dict[str, int]] = {
            outcome: dict.fromkeys(LANES, 0) for outcome in ("exported", "failed", "dropped")
        }
        # What the worker handed to the exporter and has not counted yet, per lane.
        self._inflight = [0] * len(LANES)
        self._abandoned = False  # a shutdown gave the batch in flight up (and counted it)
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

    def submit(self, spans: Sequence[ReadableSpan], lane: int) -> None:
        """Queue kept spans in ``lane``, taking room from lower lanes if the queue is full.

        Whatever finds no room (the queue full of spans of this lane or higher ones) is dropped
        and counted, and so is every span pushed out of a lower lane.
        """
        if TAPS:
            seen = self._scrub(spans) if self._scrub is not None else spans
            for tap in list(TAPS):
                tap.extend(seen)
        dropped = self.counts["dropped"]
        with self._cond:
            if self._stopping:
                dropped[LANES[lane]] += len(spans)
                return
            self._ensure_worker()
            need = len(spans) - (self._capacity - self._queued)
            if need > 0:
                need = self._make_room(lane, need)
                if need > 0:  # still full: the newest of what came is what does not fit
                    dropped[LANES[lane]] += need
                    spans = spans[: len(spans) - need]
            self._queues[lane].extend(spans)
            self._queued += len(spans)
            if self._queued >= self._batch_size:
                self._cond.notify_all()

    def _make_room(self, lane: int, need: int) -> int:
        """Push out up to ``need`` spans of lanes below ``lane``, lowest and newest first."""
        dropped = self.counts["dropped"]
        for lower in range(len(LANES) - 1, lane, -1):
            queue = self._queues[lower]
            out = min(need, len(queue))
            if out:
                for _ in range(out):
                    queue.pop()
                dropped[LANES[lower]] += out
                self._queued -= out
                need -= out
                if not need:
                    break
        return need

    def queued(self) -> dict[str, int]:
        """Spans waiting per lane."""
        with self._cond:
            return {name: len(queue) for name, queue in zip(LANES, self._queues, strict=True)}

    def _take(self) -> list[tuple[int, list[ReadableSpan]]]:
        batch: list[tuple[int, list[ReadableSpan]]] = []
        room = self._batch_size
        for lane, queue in enumerate(self._queues):  # the first lanes first, always
            taken = [queue.popleft() for _ in range(min(room, len(queue)))]
            if taken:
                batch.append((lane, taken))
                room -= len(taken)
                self._queued -= len(taken)
                self._inflight[lane] += len(taken)
        return batch

    def _run(self) -> None:
        with _selfcalls.quiet():
            self._drain()

    def _drain(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._delay_s
                while not self._stopping and not self._flushes and self._queued < self._batch_size:
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
            for lane, spans in batch:
                self._export(lane, spans)

    def _export(self, lane: int, spans: Sequence[ReadableSpan]) -> None:
        if self._scrub is not None:
            spans = self._scrub(spans)
        ok = True
        for exporter in self._exporters:
            try:
                result = exporter.export(spans)
            except Exception as exc:  # an exporter bug must not stop the worker
                _log.debug("span exporter %r raised", exporter, exc_info=exc)
                result = SpanExportResult.FAILURE
            ok = ok and result is SpanExportResult.SUCCESS
        with self._cond:
            if self._abandoned:  # counted as lost by the shutdown that gave up waiting for it
                return
            self._inflight[lane] -= len(spans)
            self.counts["exported" if ok else "failed"][LANES[lane]] += len(spans)
            self._cond.notify_all()

    def force_flush(self, timeout: float) -> bool:
        """Export everything queued now; False if ``timeout`` seconds were not enough."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None and not self._queued:
                return True
            self._ensure_worker()
            self._flushes += 1
            self._cond.notify_all()
            while self._queued or any(self._inflight):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self, timeout: float, undecided: int = 0) -> None:
        """Flush within ``timeout``, stop the worker and shut the exporters down.

        What is still queued or in flight at the deadline is counted in :data:`LOST_AT_SHUTDOWN`
        (and the lanes' dropped count) and named in one warning line, with the ``undecided``
        spans the tail sampler could not decide in time (lane ``none``).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stopping:
                return  # already shut down
        self.force_flush(timeout)
        lost: dict[tuple[str, str], int] = {}
        if undecided:
            lost["none", "undecided"] = undecided
        with self._cond:
            self._stopping = True
            for name, queue, inflight in zip(LANES, self._queues, self._inflight, strict=True):
                if queue:
                    lost[name, "queued"] = len(queue)
                    self.counts["dropped"][name] += len(queue)
                    queue.clear()
                if inflight:
                    lost[name, "in_flight"] = inflight
            self._queued = 0
            self._abandoned = True
            self._cond.notify_all()
            thread = self._thread
        if lost:
            _report_lost(lost)
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


def _report_lost(lost: dict[tuple[str, str], int]) -> None:
    """Count what a shutdown could not export, and say so in one line."""
    for key, n in lost.items():
        LOST_AT_SHUTDOWN[key] = LOST_AT_SHUTDOWN.get(key, 0) + n

    def part(stage: str) -> str:
        counts = [f"{name} {lost[name, stage]}" for name in LANES if (name, stage) in lost]
        return ", ".join(counts) if counts else "none"

    _log.warning(
        "obskit shutdown: %d spans were not exported by its deadline: in flight to the "
        "exporter, unconfirmed: %s; still queued: %s; not decided (the buffer was busy): %d "
        "(counted in obskit_export_lost_at_shutdown_spans_total)",
        sum(lost.values()),
        part("in_flight"),
        part("queued"),
        lost.get(("none", "undecided"), 0),
    )


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
