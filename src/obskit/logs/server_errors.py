"""A request that raised: the server's own line about it, given the request's ids or dropped.

uvicorn (``Exception in ASGI application``) and gunicorn (``Error handling request``) log the
exception once the application has returned, outside the request's context: no correlation id,
no trace id, and the same traceback that obskit's error access line already carries. The
middleware notes each exception it saw on the exception itself (:func:`note_request_error`); a
filter on the servers' error loggers then drops the server's line when obskit's access line
reported it, and otherwise gives the line the request's ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "SERVER_ERROR_LOGGERS",
    "install_error_filter",
    "note_request_error",
    "remove_error_filter",
]

#: The loggers on which servers report an exception that escaped the application.
SERVER_ERROR_LOGGERS: Final = ("uvicorn.error", "gunicorn.error")

# The attribute an exception carries once a request's exchange has seen it: the request's ids, and
# whether obskit's access line already logged it. An attribute (in the exception's own __dict__)
# rather than a registry: exceptions cannot be weakly referenced, and holding them would keep
# their tracebacks' frames alive.
_MARK: Final = "_obskit_request"
_REPORTED: Final = "reported"


def note_request_error(
    error: BaseException, fields: Mapping[str, Any], span: Any, reported: bool
) -> None:
    """Remember on ``error`` that a request failed with it: whether obskit's access line already
    ``reported`` it, else the request's ids (its bound ``fields``, its ``span``'s trace and span
    ids) for the server's own line. Runs only for a request that raised."""
    try:
        if reported:
            mark: Any = _REPORTED
        else:
            mark = dict(fields)
            span_context = span.get_span_context() if span is not None else None
            if span_context is not None and span_context.is_valid:
                mark["trace_id"] = f"{span_context.trace_id:032x}"
                mark["span_id"] = f"{span_context.span_id:016x}"
        error.__dict__[_MARK] = mark
    except (AttributeError, TypeError):
        pass  # an exception without a __dict__: the server's line stays as it is


def _server_error_filter(record: logging.LogRecord) -> bool:
    """Drop a server's line about an exception obskit already logged; give it the request's ids
    otherwise."""
    exc_info = record.exc_info
    if not exc_info:
        return True
    error = exc_info[1]
    mark = getattr(error, "__dict__", None)
    mark = mark.get(_MARK) if mark is not None else None
    if mark is None:
        return True
    if mark == _REPORTED:
        return False
    for key, value in mark.items():
        if not hasattr(record, key):
            setattr(record, key, value)
    return True


def install_error_filter() -> None:
    """Put the filter on the servers' error loggers (idempotent; a filter survives the servers'
    own logging configuration, which replaces handlers only)."""
    for name in SERVER_ERROR_LOGGERS:
        logger = logging.getLogger(name)
        if _server_error_filter not in logger.filters:
            logger.addFilter(_server_error_filter)


def remove_error_filter() -> None:
    """Undo :func:`install_error_filter`."""
    for name in SERVER_ERROR_LOGGERS:
        logging.getLogger(name).removeFilter(_server_error_filter)
