"""OpenTelemetry's current context, read and switched in one call each.

Every request reads the current span (for its SERVER span's parent and for each log line),
makes its span current, and restores the context at the end. Through OpenTelemetry's public
API these are three to four Python calls each (``get_current_span`` → ``get_value`` →
``get_current`` → the runtime context), about twelve per request. With the default runtime
context, the current context is one ``ContextVar`` and each of these is one C call on it.

The variable is private to OpenTelemetry, so it is used only when the runtime context is exactly
``ContextVarsRuntimeContext`` holding a ``ContextVar`` (found once, at import, by
:func:`obskit._compat.otel.context_variable`); with any other runtime (``OTEL_PYTHON_CONTEXT``)
the public API is used, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from obskit import _guard
from obskit._compat import otel as otel_compat

__all__ = [
    "SPAN_CONTEXT_IS_TUPLE",
    "SPAN_KEY",
    "current",
    "current_span_or_none",
    "enter",
    "enter_span",
    "leave",
]

SPAN_KEY: Final = otel_compat.SPAN_KEY  # where get_current_span finds the current span
_Span = trace.Span


def _span_context_is_tuple() -> bool:
    """Whether ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid)`` its constructor builds, and one made directly as that tuple equals
    one the constructor made. Checked once, not assumed."""
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
    fields = (0x5CE9, 0x7A, False, flags, DEFAULT_TRACE_STATE, True)
    try:
        public = trace.SpanContext(*fields[:5])
        made: Any = tuple.__new__(trace.SpanContext, fields)
        invalid = trace.SpanContext(0, 0, False)
        return bool(
            tuple(made) == tuple(public) == fields
            and (made.trace_id, made.span_id, made.is_remote) == fields[:3]
            and made.trace_flags == public.trace_flags
            and made.trace_state is public.trace_state
            and made.is_valid is True
            and invalid[5] is False
        )
    except Exception:
        return False


#: Hot paths may read a ``SpanContext``'s fields by index (each property is a Python call) and
#: build one whose ids they know are valid as that tuple (the constructor checks them again).
SPAN_CONTEXT_IS_TUPLE: Final = _span_context_is_tuple()


_var = otel_compat.context_variable()

# The current OpenTelemetry context (a mapping; never None).
current: Callable[[], Context] = _var.get if _var is not None else otel_context.get_current


def current_span_or_none(context: Context | None = None) -> Any:
    """The span in ``context`` (default: the current context) as ``get_current_span`` finds it,
    or None where that would return ``INVALID_SPAN``."""
    span = (context if context is not None else current()).get(SPAN_KEY)
    return span if span is not None and isinstance(span, _Span) else None


if _var is not None:
    _get = _var.get
    _set = _var.set
    _reset = _var.reset

    def enter_span(span: trace.Span, parent: Context | None) -> Token[Context]:
        """Make ``span`` current over ``parent`` (default: the current context): what
        ``attach(set_span_in_context(span, parent))`` does, in two C calls."""
        return _set(Context({**(parent if parent is not None else _get()), SPAN_KEY: span}))

    def enter(context: Context) -> Token[Context]:
        """``attach(context)``."""
        return _set(context)

    def leave(token: Token[Context]) -> None:
        """``detach(token)``: a token from another context is reported (as OpenTelemetry logs
        it), never raised."""
        try:
            _reset(token)
        except Exception as exc:
            _guard.report("tracing.context", exc)

else:

    def enter_span(span: trace.Span, parent: Context | None) -> Token[Context]:
        """Make ``span`` current over ``parent`` (default: the current context)."""
        return otel_context.attach(trace.set_span_in_context(span, parent))

    def enter(context: Context) -> Token[Context]:
        """``attach(context)``."""
        return otel_context.attach(context)

    def leave(token: Token[Context]) -> None:
        """``detach(token)``."""
        otel_context.detach(token)
