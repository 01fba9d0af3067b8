"""``init()``'s tracing part: provider, propagators, tail sampler, export, log buffer, exemplars.

Built first by the runtime (so metrics can ask it whether a trace is kept). With ``tracing`` off
nothing is built and ``obskit.get_tracer()`` stays the no-op tracer, so decorated calls stay
cheap. After a fork the child builds everything afresh: a new ``service.instance.id``, an empty
buffer, its own threads; the parent's pending traces remain the parent's to decide.
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import TYPE_CHECKING, Any

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from obskit import _exemplars, _guard
from obskit._compat import otel as otel_compat
from obskit._config import Settings
from obskit._identity import OBSKIT_VERSION, identity, instance_id
from obskit._semconv import LEVELS
from obskit.logs import setup as log_setup
from obskit.logs.buffer import TraceLogBuffer
from obskit.tracing import api, policies, provider
from obskit.tracing.export import ExportLanes, build_exporters
from obskit.tracing.policies import RULE_ALL, Verdict, lane_of
from obskit.tracing.scrub import SpanScrubber
from obskit.tracing.selfmetrics import TailMetrics
from obskit.tracing.tail import TailSampler
from obskit.tracing.verdicts import annotate

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = ["ExportAll", "TracingComponent", "build", "make_resource"]

_log = logging.getLogger("obskit")
_ALL = Verdict(True, RULE_ALL, "span_end", 0, 1.0)


def make_resource(settings: Settings, inherited: Resource | None = None) -> Resource:
    """Service name, version, environment and a ``service.instance.id`` new in every process.

    In a forked child ``inherited`` is the parent's resource: only the per-process attributes
    change. ``Resource.create`` is not called again there, because its detectors run in a
    thread pool, and starting threads inside an at-fork hook can hang the child (gunicorn
    ``--preload`` workers never booted).
    """
    own: dict[str, Any] = {"service.instance.id": instance_id(), "process.pid": os.getpid()}
    if inherited is not None:
        return inherited.merge(Resource(own))
    attributes: dict[str, Any] = dict(settings.resource_attributes)
    # One identity for every signal: obskit_build_info reads the same one.
    attributes.update(identity(settings).resource_attributes())
    attributes.update(own)
    return Resource.create(attributes)


_live: TracingComponent | None = None
_exit_hook = False
EXIT_TIMEOUT_S = 2.0


def _flush_at_exit() -> None:
    """Interpreter exit: decide and export pending traces of the live component, bounded."""
    component = _live
    if component is not None:
        component.shutdown(EXIT_TIMEOUT_S)


class ExportAll(SpanProcessor):
    """``all`` and ``collector`` modes: every span goes to export as it ends, no buffering.

    In ``all`` mode spans carry the keep attributes (rule ``all``, weight 1); in ``collector``
    mode they go out untouched, for the Collector's tail sampling to decide. Either way a span
    waits in the export lane of the rule it matches (errors first, the rest in the baseline's),
    so that a full queue still lets errors out.
    """

    def __init__(self, lanes: ExportLanes, mark: bool, match: Any = None) -> None:
        self._lanes = lanes
        self._mark = mark
        self._match = match if match is not None else policies.span_rule(1 << 62)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span for export."""
        try:
            rule = self._match(span, span.attributes, span.events)
            out = annotate(span, _ALL) if self._mark else span
            self._lanes.submit((out,), policies.LANE_BASELINE if rule is None else lane_of(rule))
        except Exception as exc:  # a span processor must never raise into user code
            _guard.report("tracing.on_end", exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued."""
        return self._lanes.force_flush(timeout_millis / 1000)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Flush and stop."""
        self._lanes.shutdown(timeout)


class _NeverGate:
    """Collector mode: the decision is made elsewhere, so no exemplar can be known valid."""

    def offer(self, trace_id: int, apply: Any) -> None:
        return None


def _set_propagators() -> None:
    # Imported here, not with this module: opentelemetry.propagate reads OTEL_PROPAGATORS when
    # imported and raises on a name that is not installed, and this module is imported with
    # obskit._runtime, before init() has checked the variable (and said so as a ConfigError).
    from opentelemetry import propagate

    # OTEL_PROPAGATORS, when set, is the operator's explicit choice: leave it alone.
    if os.environ.get("OTEL_PROPAGATORS"):
        return
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )


class TracingComponent:
    """The live tracing wiring of one runtime (rebuilt in a forked child)."""

    name = "tracing"

    def __init__(self, settings: Settings, write_line: Any = None) -> None:
        self.settings = settings
        self._write_line = write_line
        self.sampler: TailSampler | None = None
        self.log_buffer: TraceLogBuffer | None = None
        self.lanes: ExportLanes | None = None
        self.processor: SpanProcessor | None = None
        self.provider: TracerProvider | None = None
        self.tracer: Any = None
        self._gate: Any = None
        self.destination = ""
        self._start()

    def _start(self) -> None:
        settings = self.settings
        exporters, self.destination = build_exporters(settings, self._write_line)
        # Every exporter gets spans cleaned by the one redaction policy (on the export worker).
        scrubber = SpanScrubber()
        lanes = ExportLanes(exporters, scrub=scrubber.scrub_all)
        self.lanes = lanes
        # No at-exit hook per provider (each would keep its provider alive for good): one
        # module-level hook flushes whichever component is live when the interpreter exits.
        previous = self.provider
        tracer_provider = TracerProvider(
            resource=make_resource(settings, previous.resource if previous else None),
            sampler=ALWAYS_ON,
            shutdown_on_exit=False,
        )
        processor: SpanProcessor
        if settings.sampling == "tail":
            sampler = TailSampler(
                lanes,
                baseline_ratio=settings.baseline_ratio,
                slow_threshold_ms=settings.slow_threshold_ms,
                slow_per_route=settings.slow_per_route,
                keep_rules=settings.keep_rules,
                keep_if=settings.extras.get("keep_if"),
                trace_timeout_s=settings.trace_timeout_s,
                max_traces=settings.max_traces,
                max_spans_per_trace=settings.max_spans_per_trace,
                max_buffer_bytes=settings.max_buffer_bytes,
            )
            self.sampler = processor = sampler
            self.log_buffer = self._log_buffer(sampler)
            if settings.exemplars:
                self._gate = sampler
                _exemplars.set_gate(sampler)
        else:
            # Ranks by the cheap rules only: every span is kept, so the user's keep_if (which
            # may be slow) is not asked.
            match = policies.span_rule(int(settings.slow_threshold_ms * 1e6), settings.keep_rules)
            processor = ExportAll(lanes, mark=settings.sampling == "all", match=match)
            if settings.sampling == "collector":
                self._gate = _NeverGate()
                _exemplars.set_gate(self._gate)
        self.processor = processor
        tracer_provider.add_span_processor(processor)
        self.provider = tracer_provider
        _set_propagators()
        provider.install_global(tracer_provider)
        self.tracer = tracer_provider.get_tracer("obskit", OBSKIT_VERSION)
        api.set_tracer(self.tracer)

    def _log_buffer(self, sampler: TailSampler) -> TraceLogBuffer | None:
        settings = self.settings
        levels = LEVELS
        buffer_level = settings.log_buffer_level
        if buffer_level is None or levels[buffer_level] >= levels[settings.log_level]:
            return None
        buffer = TraceLogBuffer(sampler.state)
        sampler.listeners.append(buffer.release)
        log_setup.set_holder(buffer)
        return buffer

    def parts(self) -> tuple[Any, Any, Any]:
        """The live sampler, log buffer and export lanes (for the self-metrics)."""
        return self.sampler, self.log_buffer, self.lanes

    def after_fork_in_child(self) -> None:
        """Build everything afresh in the child, with a new instance id and threads."""
        self._start()

    def detach(self) -> None:
        """Stop handing out this component's tracer, gate and holder (where still installed).

        Lock-free, for ``shutdown()``'s caller (possibly a signal handler); it only undoes what
        this component installed, so a late call cannot undo a newer component's.
        """
        global _live
        if _live is self:
            _live = None
        if api.get_tracer() is self.tracer:
            api.set_tracer(None)
        provider.detach(self.provider)
        if self.log_buffer is not None and log_setup.holder() is self.log_buffer:
            log_setup.set_holder(None)
        if self._gate is not None and _exemplars.gate is self._gate:
            _exemplars.set_gate(None)

    def shutdown(self, timeout: float) -> None:
        """Decide every pending trace and flush within ``timeout``; then go back to no-op."""
        try:
            processor = self.processor
            if isinstance(processor, (TailSampler, ExportAll)):
                processor.shutdown(timeout)
        finally:
            self.detach()


def build(runtime: Runtime) -> TracingComponent | None:
    """The tracing component for ``runtime``, or None with tracing switched off."""
    settings = runtime.settings
    if not settings.tracing:
        return None
    if otel_compat.SPAN_LAYOUT_PROBLEM is not None:
        # Spans this SDK keeps differently would be misread on every request: no tracing, said
        # once at init() (and counted), rather than wrong decisions.
        raise RuntimeError(otel_compat.SPAN_LAYOUT_PROBLEM)
    component = TracingComponent(settings)
    global _live, _exit_hook
    _live = component
    if not _exit_hook:
        _exit_hook = True
        atexit.register(_flush_at_exit)
    if settings.metrics:
        runtime.register(TailMetrics(component.parts))
    _log.info("obskit traces: kept spans go to %s", component.destination)
    return component
