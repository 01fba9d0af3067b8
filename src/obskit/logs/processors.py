"""The processors of obskit's log chain: plain ``(logger, method_name, event_dict)`` callables.

:class:`Enricher` does in one step what a typical chain does in five (timestamp, level, service
fields, bound context, trace ids): the per-line cost is what makes the chain cheap. Everything it
can decide at configuration time (service fields, level names) is decided in ``__init__``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from opentelemetry import trace as otel_trace
from structlog import contextvars as structlog_contextvars
from structlog.processors import ExceptionRenderer, format_exc_info
from structlog.tracebacks import ExceptionDictTransformer

from obskit import _otel_context, context
from obskit._compat import structlog as structlog_compat
from obskit._semconv import METHOD_LEVEL_NAME
from obskit.logs.redaction import Redactor

__all__ = [
    "STRUCTLOG_VARS",
    "Enricher",
    "current_trace_id",
    "exception_fields",
    "format_timestamp",
    "neutralise_control_chars",
]

_Span = otel_trace.Span
_time_ns = time.time_ns
_context_fields = context.current_fields
_CONTAINERS: Final = (dict, list, tuple)
_EMPTY: Final[Mapping[str, Any]] = {}
# Types already found to be OpenTelemetry spans (bounded: a process has a handful).
_span_types: set[type] = set()
_MAX_SPAN_TYPES: Final = 64
_NO_IDS: Final[tuple[object, str, str]] = (None, "", "")
_SpanContext = otel_trace.SpanContext
_SPAN_CONTEXT_IS_TUPLE: Final = _otel_context.SPAN_CONTEXT_IS_TUPLE

# The current OpenTelemetry context, one C call away with the default runtime context; the span
# is found exactly as get_current_span() finds it (see obskit._otel_context).
_current_otel_context = _otel_context.current
_SPAN_KEY: Final = _otel_context.SPAN_KEY
# structlog's own context variables (``structlog.contextvars.bind_contextvars``): applications
# and libraries written for structlog bind request fields there. They are read only once
# structlog has created one (its registry is not empty), from that registry when possible.
# (Were the registry to go away in a structlog release, every line would walk the context.)
_structlog_vars: dict[str, Any] | None = structlog_compat.CONTEXT_VARS
_get_structlog_vars = structlog_contextvars.get_contextvars
_STRUCTLOG_PREFIX: Final[str | None] = getattr(structlog_contextvars, "STRUCTLOG_KEY_PREFIX", None)
#: structlog's registry of its context variables (None if this structlog has none): while it is
#: an empty dict no line has structlog fields to read.
STRUCTLOG_VARS: Final = _structlog_vars


# Three-digit groups, looked up rather than formatted: the microseconds are two of them.
_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))


class _TimestampFormatter:
    """UTC ISO-8601 with microseconds; the date-time prefix is formatted once per second."""

    __slots__ = ("_cached", "_now_cached")

    def __init__(self) -> None:
        self._cached = (-1, "")
        self._now_cached = (-(10**18), "")  # (the second's first nanosecond, "date-time.")

    def __call__(self, now: float) -> str:
        second = int(now)
        # One tuple, read once: a thread never pairs one second's prefix with another's fraction.
        cached = self._cached
        if cached[0] != second:
            prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            cached = self._cached = (second, prefix)
        # %d truncates the float as int() does; %-formatting is the cheapest way to build this.
        return "%s.%06dZ" % (cached[1], (now - second) * 1_000_000)  # noqa: UP031

    def now(self) -> str:
        """The current time (from integer nanoseconds: no float to split)."""
        ns = _time_ns()
        # Nanoseconds since the cached second: a small int, cheap to divide (one big-int
        # subtraction instead of three big-int divisions). One tuple read, as above.
        cached = self._now_cached
        fraction = ns - cached[0]
        if fraction >= 1_000_000_000 or fraction < 0:
            second = ns // 1_000_000_000
            prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
            cached = self._now_cached = (second * 1_000_000_000, prefix)
            fraction = ns - cached[0]
        micros = fraction // 1000
        return f"{cached[1]}{_DIGITS[micros // 1000]}{_DIGITS[micros % 1000]}Z"


format_timestamp = _TimestampFormatter()


class Enricher:
    """Adds timestamp, level, service identity, bound context and trace/span ids to a line.

    Keys given in the log call win over the bound context; the active span's trace_id and span_id
    are always obskit's. With a ``redactor`` it also redacts what it merges (the call's keys, the
    context, the event text), so the chain walks each line once.
    """

    def __init__(
        self,
        service: Mapping[str, Any],
        redactor: Redactor | None = None,
        structured_exceptions: bool = True,
    ) -> None:
        self._service = dict(service)
        self.redactor = redactor
        self._structured_exceptions = structured_exceptions
        # (span context, trace id hex, span id hex) of the last span seen: lines of one span
        # format its ids once. A tuple is swapped atomically, so threads cannot mix its parts.
        self._ids: tuple[object, str, str] = (None, "", "")
        # (bound context, its redacted form, whether that form may be reused) of the last context
        # seen: the context is a new dict on every change and never changed in place, so the
        # lines of one request clean it once.
        self._bound: tuple[object, Mapping[str, Any], bool | None] = (None, {}, None)

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        created = event_dict.pop("_created", None)
        event = event_dict.pop("event", None)
        logger_name = event_dict.pop("_logger", None)
        redactor = self.redactor
        if redactor is not None and event is not None:
            clean = redactor.clean_text if type(event) is str else redactor.clean_value
            event = clean(event)
        fields: Mapping[str, Any] = event_dict
        if event_dict:
            if "exc_info" in event_dict:
                # As text for the console renderer (which would print the raw exception):
                # either way the exception's message and notes are redacted as the line is.
                fields = (
                    exception_fields(logger, method_name, event_dict)
                    if self._structured_exceptions
                    else format_exc_info(logger, method_name, event_dict)
                )
            if redactor is not None:
                fields = redactor.clean_mapping(fields)
        return self.line(method_name, logger_name, event, fields, created)

    def line(
        self,
        method_name: str,
        logger_name: Any,
        event: Any,
        fields: Mapping[str, Any],
        created: float | None = None,
    ) -> dict[str, Any]:
        """The line for ``fields`` its caller vouches for: already redacted (or needing none under
        :attr:`redactor`), like ``event``. ``created`` is the line's time (default: now).

        One dict display in the order of the contract (each later source wins a key, which keeps
        its first position): obskit's fields, the service, structlog's context variables, the
        bound context, the call's fields; then the active span's ids.
        """
        redactor = self.redactor
        theirs: Mapping[str, Any] = _EMPTY
        if _structlog_vars is None or _structlog_vars:
            theirs = self.structlog_fields()
        bound = _context_fields()
        if bound and redactor is not None:
            cached = self._bound
            bound = cached[1] if cached[0] is bound and cached[2] else self.clean_bound(bound)
        line: dict[str, Any] = {
            "timestamp": format_timestamp.now() if created is None else format_timestamp(created),
            "level": METHOD_LEVEL_NAME.get(method_name, method_name),
            "logger": logger_name,
            "event": event,
            **self._service,
            **theirs,
            **bound,
            **fields,
        }
        ids = self.span_ids()
        if ids[1]:
            line["trace_id"] = ids[1]
            line["span_id"] = ids[2]
        return line

    @property
    def service(self) -> Mapping[str, Any]:
        """The service fields every line carries (after the timestamp, level, logger, event)."""
        return self._service

    def update_service(self, **fields: Any) -> None:
        """Change service fields in place (the ``pid`` in a forked child)."""
        self._service.update(fields)

    def structlog_fields(self) -> Mapping[str, Any]:
        """structlog's context variables as a line carries them (redacted); callers skip this
        call while :data:`STRUCTLOG_VARS` is an empty registry (none was ever bound)."""
        theirs = _structlog_context()
        if theirs and self.redactor is not None:
            return self.redactor.clean_mapping(theirs)
        return theirs

    def span_ids(self) -> tuple[object, str, str]:
        """(span context, trace id hex, span id hex) of the active span; the ids are "" outside
        a valid span."""
        span: Any = _current_otel_context().get(_SPAN_KEY)
        if span is None or not (type(span) in _span_types or _is_span(span)):
            return _NO_IDS
        span_context = span.get_span_context()
        ids = self._ids
        if ids[0] is not span_context:
            if type(span_context) is _SpanContext and _SPAN_CONTEXT_IS_TUPLE:
                # Its fields by index: each property is a Python call (and a fresh span's
                # ids are read on every line of a request that logs once).
                trace_id, span_id, valid = span_context[0], span_context[1], span_context[5]
            else:
                trace_id, span_id = span_context.trace_id, span_context.span_id
                valid = span_context.is_valid
            if valid:
                # Valid ids fit 128 and 64 bits; to_bytes().hex() is twice as fast as format().
                ids = (
                    span_context,
                    trace_id.to_bytes(16, "big").hex(),
                    span_id.to_bytes(8, "big").hex(),
                )
            else:
                ids = (span_context, "", "")
            self._ids = ids
        return ids

    def clean_bound(self, bound: Mapping[str, Any]) -> Mapping[str, Any]:
        """The bound context ``bound`` redacted (its last clean form reused when it may be)."""
        redactor = self.redactor
        if redactor is None:
            return bound
        cached = self._bound
        if cached[0] is not bound:
            clean = redactor.clean_mapping(bound)
            self._bound = (bound, clean, None)
            return clean
        if cached[2]:
            return cached[1]
        if cached[2] is None:
            # Seen twice: its clean form may be reused unless a value is a container (which
            # could change in place). Checked now, not on first sight, because most contexts
            # (a request with only its access line) are seen once.
            reusable = not any(isinstance(value, _CONTAINERS) for value in bound.values())
            self._bound = (bound, cached[1], reusable)
            if reusable:
                return cached[1]
        return redactor.clean_mapping(bound)


def _structlog_context() -> Mapping[str, Any]:
    """What structlog's get_contextvars() returns, without walking every context variable.

    Its registry names structlog's own variables (unset and cleared ones hold ``...``). Two or more
    set ones are read with get_contextvars() itself: it orders them as the context does.
    """
    if _structlog_vars is None or _STRUCTLOG_PREFIX is None:
        return _get_structlog_vars()
    found: dict[str, Any] | None = None
    try:
        for variable in _structlog_vars.values():
            value = variable.get(...)
            if value is not ...:
                if found is not None:
                    return _get_structlog_vars()
                found = {variable.name.removeprefix(_STRUCTLOG_PREFIX): value}
    except RuntimeError:  # another thread registered a variable meanwhile
        return _get_structlog_vars()
    return _EMPTY if found is None else found


def _is_span(value: object) -> bool:
    # isinstance() against the Span ABC costs more than the rest of the lookup: remember types.
    if not isinstance(value, _Span):
        return False
    if len(_span_types) < _MAX_SPAN_TYPES:
        _span_types.add(type(value))
    return True


def current_trace_id() -> int:
    """The active span's trace id; 0 outside a span or in an invalid one."""
    span: Any = _current_otel_context().get(_SPAN_KEY)
    if span is None or not (type(span) in _span_types or _is_span(span)):
        return 0
    span_context = span.get_span_context()
    return span_context.trace_id if span_context.is_valid else 0


_exception_renderer = ExceptionRenderer(ExceptionDictTransformer(show_locals=False, max_frames=20))


def exception_fields(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Turns ``exc_info`` into a structured ``exception`` field (type, value, frames; no locals)."""
    if "exc_info" in event_dict:
        return dict(_exception_renderer(logger, method_name, event_dict))
    return event_dict


def _escape(text: str, keep: str = "\t") -> str:
    return "".join(ch if ch >= " " or ch in keep else f"\\x{ord(ch):02x}" for ch in text)


def neutralise_control_chars(
    logger: Any, method_name: str, event_dict: dict[str, Any]
) -> dict[str, Any]:
    """For the console renderer: escape CR, LF and other control characters in string values.

    (The JSON renderer escapes them by construction; this keeps a human-readable line to one line.)
    """
    for key, value in event_dict.items():
        if isinstance(value, str) and not value.isprintable():
            # A formatted traceback keeps its line breaks; the renderer prints it below the line.
            event_dict[key] = _escape(value, "\t\n" if key == "exception" else "\t")
    return event_dict
