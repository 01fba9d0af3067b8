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
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer

from obskit import context
from obskit.logs.redaction import Redactor

__all__ = ["Enricher", "exception_fields", "format_timestamp", "neutralise_control_chars"]

_LEVEL_NAMES: Final = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}

_get_current_span = otel_trace.get_current_span
_context_fields = context.fields
# structlog's own context variables (``structlog.contextvars.bind_contextvars``): applications
# and libraries written for structlog bind request fields there. Reading them walks the whole
# context, so it is done only once structlog has created one (its registry is not empty).
# (Were that registry to go away in a structlog release, every line would read them.)
_structlog_vars: dict[str, Any] | None = getattr(structlog_contextvars, "_CONTEXT_VARS", None)
_get_structlog_vars = structlog_contextvars.get_contextvars


class _TimestampFormatter:
    """UTC ISO-8601 with microseconds; the date-time prefix is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            # Two threads may race here; both compute the same value for the same second.
            self._prefix, self._second = prefix, second
            return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"


format_timestamp = _TimestampFormatter()


class Enricher:
    """Adds timestamp, level, service identity, bound context and trace/span ids to a line.

    Keys given in the log call win over the bound context; obskit's own keys (timestamp, level,
    trace_id, span_id) are always obskit's. With a ``redactor`` it also redacts what it merges
    (the call's keys, the context, the event text), so the chain walks each line once.
    """

    def __init__(
        self,
        service: Mapping[str, str],
        redactor: Redactor | None = None,
        structured_exceptions: bool = True,
    ) -> None:
        self._service = dict(service)
        self._redactor = redactor
        self._structured_exceptions = structured_exceptions
        # (span context, trace id hex, span id hex) of the last span seen: lines of one span
        # format its ids once. A tuple is swapped atomically, so threads cannot mix its parts.
        self._ids: tuple[object, str, str] = (None, "", "")

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        created = event_dict.pop("_created", None)
        event = event_dict.pop("event", None)
        redactor = self._redactor
        if redactor is not None and type(event) is str:
            event = redactor.clean_text(event)
        line: dict[str, Any] = {
            "timestamp": format_timestamp(time.time() if created is None else created),
            "level": _LEVEL_NAMES.get(method_name, method_name),
            "logger": event_dict.pop("_logger", None),
            "event": event,
        }
        line.update(self._service)
        if _structlog_vars is None or _structlog_vars:
            theirs = _get_structlog_vars()
            if theirs:
                line.update(theirs if redactor is None else redactor.clean_mapping(theirs))
        bound = _context_fields()
        if bound:
            line.update(bound if redactor is None else redactor.clean_mapping(bound))
        if event_dict:
            if "exc_info" in event_dict and self._structured_exceptions:
                event_dict = exception_fields(logger, method_name, event_dict)
            line.update(event_dict if redactor is None else redactor.clean_mapping(event_dict))
        span_context = _get_current_span().get_span_context()
        if span_context.is_valid:
            ids = self._ids
            if ids[0] is not span_context:
                ids = (
                    span_context,
                    format(span_context.trace_id, "032x"),
                    format(span_context.span_id, "016x"),
                )
                self._ids = ids
            line["trace_id"] = ids[1]
            line["span_id"] = ids[2]
        return line


_exception_renderer = ExceptionRenderer(ExceptionDictTransformer(show_locals=False, max_frames=20))


def exception_fields(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Turns ``exc_info`` into a structured ``exception`` field (type, value, frames; no locals)."""
    if "exc_info" in event_dict:
        return dict(_exception_renderer(logger, method_name, event_dict))
    return event_dict


def _escape(text: str) -> str:
    return "".join(ch if ch >= " " or ch == "\t" else f"\\x{ord(ch):02x}" for ch in text)


def neutralise_control_chars(
    logger: Any, method_name: str, event_dict: dict[str, Any]
) -> dict[str, Any]:
    """For the console renderer: escape CR, LF and other control characters in string values.

    (The JSON renderer escapes them by construction; this keeps a human-readable line to one line.)
    """
    for key, value in event_dict.items():
        if isinstance(value, str) and not value.isprintable():
            event_dict[key] = _escape(value)
    return event_dict
