"""OpenTelemetry's private parts that obskit reads, each found here once, with its fallback.

obskit reads some of OpenTelemetry's internals where the public API would cost the request path
copies, locks and calls it does not need, or where no public API says what obskit must know:

* the context variable behind the default runtime context (:func:`context_variable`), so that
  reading and switching the current context is one C call each; with any other runtime context
  the public API is used;
* the key the current span is stored under in a context (:data:`SPAN_KEY`);
* the context keys with which exporters and instrumentations suppress instrumentation
  (:data:`SUPPRESS_INSTRUMENTATION_KEY`, :data:`SUPPRESS_HTTP_INSTRUMENTATION_KEY`);
* a tracer's processors, configurator state, scope and limits (:data:`SPAN_PROCESSORS`,
  :data:`TRACER_CONFIG`, :func:`instrumentation_scope`, :func:`span_limits`): where they cannot
  be read, requests get ordinary SDK spans instead of obskit's lightweight ones;
* the fields of an SDK span (:data:`SPAN_FIELDS`): the tail sampler reads them on every span,
  where the public properties would copy attributes and events. They are a layout, not one
  value, so the readers name them directly; this module declares every such name, checks at
  import that the installed SDK keeps its spans that way (:data:`SPAN_LAYOUT_PROBLEM`), and
  tracing refuses to start, with that message, rather than misread spans if it does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    propagation,
)

__all__ = [
    "SPAN_FIELDS",
    "SPAN_KEY",
    "SPAN_LAYOUT_PROBLEM",
    "SPAN_PROCESSORS",
    "SUPPRESS_HTTP_INSTRUMENTATION_KEY",
    "SUPPRESS_INSTRUMENTATION_KEY",
    "TRACER_CONFIG",
    "context_variable",
    "copy_span",
    "instrumentation_scope",
    "span_limits",
]

# --- the current context ---------------------------------------------------------------------


def context_variable() -> ContextVar[Context] | None:
    """The ``ContextVar`` holding OpenTelemetry's current context, or None.

    Only when the runtime context is exactly the default ``ContextVarsRuntimeContext`` (then
    ``get``/``set``/``reset`` on the variable are what ``get_current``/``attach``/``detach`` do);
    with any other runtime (``OTEL_PYTHON_CONTEXT``) or layout, None: use the public API.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable
    return None


def _span_key() -> str:
    """The key ``set_span_in_context`` stores a span under: the private constant where it is
    one, else found through the public API (a context made with only the span in it)."""
    probe = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    key = getattr(propagation, "_SPAN_KEY", None)
    if not isinstance(key, str) or trace.get_current_span(Context({key: probe})) is not probe:
        (key,) = trace.set_span_in_context(probe, Context())
    return key


#: The key the current span is stored under, as ``get_current_span`` reads it.
SPAN_KEY: Final = _span_key()

# --- suppression keys ------------------------------------------------------------------------

#: The API's "record nothing" key (a unique string made at import); contrib instrumentations
#: that predate it read the plain string, which is the fallback.
SUPPRESS_INSTRUMENTATION_KEY: Final[str] = getattr(
    otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"
)
#: The API's "HTTP instrumentation suppressed" key (set by a higher-level instrumentation that
#: already covers the call, as botocore's does around its HTTP client); None where absent.
SUPPRESS_HTTP_INSTRUMENTATION_KEY: Final[str | None] = getattr(
    otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None
)

# --- a tracer's internals --------------------------------------------------------------------

#: The attribute of the SDK's multi-span-processor holding its processors (a tuple, replaced when
#: one is added). Read per request with ``getattr(..., SPAN_PROCESSORS, None)``: None means
#: "cannot tell", and requests then get ordinary SDK spans.
SPAN_PROCESSORS: Final = "_span_processors"
#: The attribute of an SDK tracer holding its configurator's verdict (``is_enabled``); SDKs
#: before tracer configurators have none, and a tracer is then enabled.
TRACER_CONFIG: Final = "_tracer_config"


def instrumentation_scope(tracer: Any) -> InstrumentationScope | None:
    """The scope of an SDK tracer's spans (None where it cannot be read)."""
    scope = getattr(tracer, "_instrumentation_scope", None)
    return scope if isinstance(scope, InstrumentationScope) else None


def span_limits(tracer: Any) -> SpanLimits | None:
    """The limits an SDK tracer applies to its spans (None where they cannot be read)."""
    limits = getattr(tracer, "_span_limits", None)
    return limits if isinstance(limits, SpanLimits) else None


# --- the fields of a span --------------------------------------------------------------------

#: Every private field of the SDK's span-side objects that obskit reads directly: of a
#: ``ReadableSpan`` (and so of obskit's own ``ServerSpan``, which keeps the same fields), of its
#: ``Status``, and the plain containers inside ``BoundedAttributes``, ``BoundedList`` and
#: ``TraceState`` (whose own ``__len__``/``__iter__`` are Python calls, one under a lock).
SPAN_FIELDS: Final = frozenset(
    {
        "_name",
        "_context",
        "_parent",
        "_attributes",
        "_events",
        "_links",
        "_kind",
        "_status",
        "_start_time",
        "_end_time",
        "_resource",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_status_code",
        "_dict",
        "_dq",
    }
)


def _span_layout_problem() -> str | None:
    """What differs between the installed SDK's span layout and :data:`SPAN_FIELDS`' (None)."""
    try:
        context = SpanContext(0x5CE9, 0x7A, False, TraceFlags(TraceFlags.SAMPLED))
        parent = SpanContext(0x5CE9, 0x7B, True, TraceFlags(TraceFlags.SAMPLED))
        attributes = BoundedAttributes(4, {"k": "v"})
        events: BoundedList[Event] = BoundedList(4)
        events.append(Event("e"))
        links: tuple[trace.Link, ...] = ()
        resource = Resource({})
        status = Status(StatusCode.ERROR)
        scope = InstrumentationScope("obskit.probe")
        state = TraceState([("ot", "th:0")])
        span = ReadableSpan(
            name="probe",
            context=context,
            parent=parent,
            resource=resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=SpanKind.SERVER,
            status=status,
            start_time=1,
            end_time=2,
            instrumentation_scope=scope,
        )
        fields: dict[str, Any] = {
            "_name": "probe",
            "_context": context,
            "_parent": parent,
            "_attributes": attributes,
            "_events": events,
            "_links": links,
            "_kind": SpanKind.SERVER,
            "_status": status,
            "_start_time": 1,
            "_end_time": 2,
            "_resource": resource,
            "_instrumentation_scope": scope,
        }
        wrong = [name for name, value in fields.items() if getattr(span, name, None) is not value]
        if not hasattr(span, "_instrumentation_info"):
            wrong.append("_instrumentation_info")
        containers: Sequence[tuple[str, object, str, type]] = (
            ("Status", status, "_status_code", StatusCode),
            ("BoundedAttributes", attributes, "_dict", dict),
            ("BoundedList", events, "_dq", object),
            ("TraceState", state, "_dict", dict),
        )
        for owner, value, name, kind in containers:
            if not isinstance(getattr(value, name, None), kind):
                wrong.append(f"{owner}.{name}")
        if dict(getattr(attributes, "_dict", {})) != {"k": "v"} or len(
            getattr(events, "_dq", ())
        ) != len(events):
            wrong.append("container contents")
    except Exception as exc:  # a constructor that changed: the layout cannot be checked
        return f"opentelemetry-sdk's spans cannot be checked: {exc!r}"
    if not wrong:
        return None
    return (
        "obskit cannot trace with this opentelemetry-sdk: its spans no longer keep "
        + ", ".join(wrong)
        + " where obskit reads them (see obskit._compat.otel); traces are off"
    )


#: None when the installed SDK keeps its spans as :data:`SPAN_FIELDS` says; else the problem.
SPAN_LAYOUT_PROBLEM: Final = _span_layout_problem()


def copy_span(
    span: ReadableSpan,
    *,
    name: str | None = None,
    context: SpanContext | None = None,
    resource: Resource | None = None,
    attributes: Any = None,
    events: Any = None,
    links: Any = None,
    status: Status | None = None,
) -> ReadableSpan:
    """A new ``ReadableSpan`` like ``span`` but for the fields given (an ended span is frozen).

    ``span`` may be an SDK span or obskit's ``ServerSpan`` (read by :data:`SPAN_FIELDS`).
    """
    return ReadableSpan(
        name=span._name if name is None else name,
        context=span._context if context is None else context,
        parent=span._parent,
        resource=span._resource if resource is None else resource,
        attributes=span._attributes if attributes is None else attributes,
        events=span._events if events is None else events,
        links=span._links if links is None else links,
        kind=span._kind,
        instrumentation_info=span._instrumentation_info,
        status=span._status if status is None else status,
        start_time=span._start_time,
        end_time=span._end_time,
        instrumentation_scope=span._instrumentation_scope,
    )
