"""A request's SERVER span that costs little unless its trace is kept.

With tail sampling, about 99 of 100 requests end in a dropped trace. An SDK span pays up front
for what only a kept span needs: every attribute is validated and copied into a bounded mapping
under a lock, and ending it builds a second, read-only span for the processors. A
:class:`ServerSpan` is a real span to everything that touches it during the request (the current
span, a parent for child spans, ids for log lines and outbound headers, attributes and events
set by the application), but it keeps what it is given as given and talks to the tail sampler
directly. Its attributes are validated the way the SDK does only when its trace is kept
(:meth:`ServerSpan.settled_attributes`).

It is used only where nothing else could tell the difference: obskit's own SDK tracer whose sole
processor is the tail sampler. When the application added a processor of its own, or sampling
is ``all``/``collector``, the middleware starts an ordinary SDK span.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from random import getrandbits
from time import time_ns
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, Tracer
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from obskit import _caches, _otel_context
from obskit._compat import otel as otel_compat
from obskit._semconv import error_type

__all__ = ["ServerSpan", "lightweight", "start_server_span"]

_SAMPLED: Final = int(TraceFlags.SAMPLED)
# W3C Trace Context level 2: the trace id's right part is random (older APIs lack the flag).
_RANDOM: Final = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_ROOT_FLAGS: Final = TraceFlags(_SAMPLED | _RANDOM)
_SAMPLED_ONLY: Final = TraceFlags(_SAMPLED)
_UNSET: Final = Status(StatusCode.UNSET)
_SERVER: Final = SpanKind.SERVER
_current_span_or_none = _otel_context.current_span_or_none
_new_tuple = tuple.__new__
# A SpanContext may be built as its tuple (see start_server_span).
_BUILD_CONTEXTS: Final = _otel_context.SPAN_CONTEXT_IS_TUPLE
# A tracer's processors and configurator state (private to the SDK; see obskit._compat.otel).
_PROCESSORS: Final = otel_compat.SPAN_PROCESSORS
_TRACER_CONFIG: Final = otel_compat.TRACER_CONFIG


class ServerSpan(trace_api.Span, ReadableSpan):
    """A SERVER span whose end goes straight to the tail sampler.

    It has the fields of the SDK's ``ReadableSpan`` (the sampler's rules and a user's ``keep_if``
    read them as on any span), with attributes in a plain dict until :meth:`settled_attributes`.
    """

    # What no span changes until it does: class defaults spare each request the stores.
    _kind = _SERVER
    _links: Sequence[Link] = ()
    _status = _UNSET
    _end_time: int | None = None
    _events: Sequence[Event] = ()
    # Exemplars offered while the span runs with no trace buffer (the tail sampler's, bounded).
    _offers: list[Any] | None = None
    # Set by the sampler once another span of its trace opened a buffer (see request_roots).
    _joined = False

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        origin: _Origin,
        start_time: int,
    ) -> None:
        # ReadableSpan.__init__ is not called: it would create a Resource when given none.
        self._name = name
        self._context = context
        self._parent = parent
        self._attributes: dict[str, Any] = attributes
        self._start_time = start_time
        self._resource = origin.resource
        self._instrumentation_info = origin.instrumentation_info
        self._instrumentation_scope = origin.scope
        self._origin = origin

    def __repr__(self) -> str:
        return f'ServerSpan(name="{self._name}", context={self._context})'

    # --- opentelemetry.trace.Span ---------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        """The span's context (trace and span ids)."""
        return self._context  # type: ignore[return-value]  # never None here

    def is_recording(self) -> bool:
        """True until the span ends."""
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        """Set one attribute (validated when the trace is kept; ignored once ended)."""
        if self._end_time is None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        """Set several attributes (validated when the trace is kept; ignored once ended)."""
        if self._end_time is None:
            self._attributes.update(attributes)

    def update_name(self, name: str) -> None:
        """Rename the span (the middleware does, once the route is known)."""
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status with the SDK's rules: UNSET is ignored and OK is final."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        """Add an event (bounded by the span limits, oldest dropped first)."""
        if self._end_time is not None:
            return
        limits = self._origin.limits
        events = self._events
        if type(events) is not deque:
            # The first event: from now on hold at most max_events, as the SDK does.
            events = self._events = deque(maxlen=limits.max_events)
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        events.append(Event(name, bounded, timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Add a link to another span (bounded by the span limits)."""
        if self._end_time is not None or not context.is_valid:
            return
        limits = self._origin.limits
        links = list(self._links)
        if len(links) < (limits.max_links or len(links) + 1):
            bounded = BoundedAttributes(
                limits.max_link_attributes,
                attributes,
                max_value_len=limits.max_attribute_length,
                immutable=True,
            )
            links.append(Link(context, bounded))
            self._links = tuple(links)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record ``exception`` as an ``exception`` event with the semconv attributes."""
        fields: dict[str, Any] = {
            "exception.type": error_type(exception),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            fields.update(attributes)
        self.add_event("exception", fields, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span and hand it to the tail sampler (a second call does nothing)."""
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._origin.sampler.end_server_span(self)

    # --- for export ------------------------------------------------------------------------

    def settled_attributes(self) -> BoundedAttributes:
        """The attributes as the SDK would have kept them: validated and bounded by the limits.

        (Events and links were bounded as they were added.)
        """
        limits = self._origin.limits
        return BoundedAttributes(
            limits.max_span_attributes,
            self._attributes,
            immutable=True,
            max_value_len=limits.max_span_attribute_length,
        )


class _Origin:
    """What every ServerSpan of one tracer shares (looked up once, not per request)."""

    __slots__ = (
        "ids",
        "instrumentation_info",
        "limits",
        "random_bits",
        "resource",
        "root_flags",
        "sampler",
        "scope",
    )

    def __init__(
        self, tracer: Tracer, sampler: Any, scope: InstrumentationScope, limits: SpanLimits
    ) -> None:
        self.sampler = sampler
        self.ids = tracer.id_generator
        # The SDK's default generator is getrandbits, retried on zero: call that directly.
        self.random_bits = getrandbits if type(self.ids) is RandomIdGenerator else None
        is_random = getattr(self.ids, "is_trace_id_random", None)
        self.root_flags = _ROOT_FLAGS if is_random is not None and is_random() else _SAMPLED_ONLY
        self.resource = tracer.resource
        self.instrumentation_info = tracer.instrumentation_info
        self.scope = scope
        self.limits: SpanLimits = limits


class _Memo:
    """The last tracer seen: (tracer, its processors, its config) and its origin (None where an
    SDK span is needed). An application may add a processor to the tracer's provider at any
    time; the processors tuple is replaced when it does, so identity tells that change. The
    memo is emptied with the runtime's caches (:mod:`obskit._caches`): it must not keep a shut
    down sampler alive."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[Any, Any, Any, _Origin | None] = _NO_ORIGIN

    def clear(self) -> None:
        self.last = _NO_ORIGIN


_NO_ORIGIN: tuple[Any, Any, Any, _Origin | None] = (None, None, None, None)
_memo = _Memo()
_caches.register(_memo.clear)


def _origin(tracer: Any) -> _Origin | None:
    """The shared parts when the tail sampler is ``tracer``'s only processor, else None."""
    if type(tracer) is not Tracer:
        return None
    processors = getattr(tracer.span_processor, _PROCESSORS, None)
    config = getattr(tracer, _TRACER_CONFIG, None)  # a tracer configurator may disable it
    last = _memo.last
    if last[0] is tracer and last[1] is processors and last[2] is config:
        return last[3]
    since = _caches.epoch
    origin = None
    if processors is not None and len(processors) == 1 and getattr(config, "is_enabled", True):
        processor = processors[0]
        scope = otel_compat.instrumentation_scope(tracer)
        limits = otel_compat.span_limits(tracer)
        if hasattr(processor, "open_server_span") and scope is not None and limits is not None:
            origin = _Origin(tracer, processor, scope, limits)
    _caches.keep(since, _memo, "last", (tracer, processors, config, origin))
    return origin


def lightweight(tracer: trace_api.Tracer) -> bool:
    """Whether :func:`start_server_span` gives ``tracer``'s requests a :class:`ServerSpan`."""
    return _origin(tracer) is not None


def start_server_span(
    tracer: trace_api.Tracer,
    name: str,
    parent: otel_context.Context | None,
    attributes: dict[str, Any],
) -> trace_api.Span:
    """Start the request's SERVER span: a :class:`ServerSpan` where it is safe, else the SDK's.

    ``attributes`` becomes the span's own (the caller builds it for this span only).
    """
    origin = _origin(tracer)
    if origin is None:
        return tracer.start_span(name, context=parent, kind=_SERVER, attributes=attributes)
    parent_span = _current_span_or_none(parent)
    parent_context: SpanContext | None = (
        parent_span.get_span_context() if parent_span is not None else None
    )
    random_bits = origin.random_bits
    if parent_context is not None and parent_context.is_valid:
        trace_id = parent_context.trace_id
        flags = TraceFlags(_SAMPLED | (parent_context.trace_flags & _RANDOM))
        state = parent_context.trace_state  # ALWAYS_ON keeps the caller's tracestate
    else:
        parent_context = None
        trace_id = (random_bits(128) or 1) if random_bits else origin.ids.generate_trace_id()
        flags = origin.root_flags
        state = None
    if random_bits and _BUILD_CONTEXTS:
        # Both ids are valid (a parent's was checked, ours are non-zero and in range): skip the
        # constructor's checks and build the tuple it builds.
        span_id = random_bits(64) or 1
        context: SpanContext = _new_tuple(
            SpanContext,
            (
                trace_id,
                span_id,
                False,
                flags,
                DEFAULT_TRACE_STATE if state is None else state,
                True,
            ),
        )
    else:
        span_id = (random_bits(64) or 1) if random_bits else origin.ids.generate_span_id()
        context = SpanContext(trace_id, span_id, False, flags, state)
    span = ServerSpan(name, context, parent_context, attributes, origin, time_ns())
    origin.sampler.open_server_span(span)
    return span
