"""How a finished exchange is recorded: one rule for the ASGI and the WSGI middleware.

Each middleware observes its protocol (ASGI messages; a WSGI body iterable and how the server
consumed it) and reduces it to four facts; :func:`outcome` turns them into the status, the
exception and the ``error.type`` that the span, the access line and RED record. The rules:

- an exception the framework answered with its own 5xx page (reported by the framework's error
  signal) is the request's exception;
- the client went away before the last byte: ``499`` (nginx's convention), and what the
  application raised in reaction (a cancellation, a broken pipe) is not the request's error;
- an exception before the response was complete, or with a 5xx response, names ``error.type``
  (the exception's fully qualified class); a response never started is a ``500``;
- an exception after a complete, successful response (background work, a ``close()`` failing)
  leaves the request successful: the span still records the exception;
- an application that returned without completing its response, the client still there: its
  status, or ``500`` if it never started one;
- any 5xx without an exception has its status code as ``error.type``
  (:func:`obskit._semconv.status_error_type`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from obskit._semconv import error_type, status_error_type
from obskit.web.exchange import CLIENT_CLOSED
from obskit.web.routes import ERROR_KEY

__all__ = ["is_disconnect", "outcome"]


def outcome(
    status: int,
    complete: bool,
    client_gone: bool,
    error: BaseException | None,
    carrier: Mapping[str, Any],
) -> tuple[int, BaseException | None, str]:
    """``(status, error, error_type)`` to record for an exchange that ended.

    ``status`` is what the application started its response with (0: never started);
    ``complete``: it handed its last byte to the server; ``client_gone``: the server saw the
    client leave before that; ``error``: what the application raised (None: it returned);
    ``carrier``: the request's scope or environ (where a framework leaves an exception it
    answered itself).
    """
    if error is None and complete and status < 500:
        return status, None, ""  # most requests: no rule to apply
    failure = ""
    if error is None and status >= 500:
        handled = carrier.get(ERROR_KEY)
        if isinstance(handled, BaseException):
            error = handled
    if error is not None:
        if not complete and (client_gone or is_disconnect(error)):
            return CLIENT_CLOSED, None, ""
        if not complete or status >= 500:
            failure = error_type(error)
            if not status:
                status = 500
    elif not complete:
        if client_gone:
            return CLIENT_CLOSED, None, ""
        if not status:
            status = 500
    if not failure:
        failure = status_error_type(status)
    return status, error, failure


def is_disconnect(error: BaseException) -> bool:
    """Whether ``error`` is how an application learns that its client went away."""
    if isinstance(error, (asyncio.CancelledError, ConnectionError)):
        return True
    # Starlette raises its own ClientDisconnect (an OSError subclass in some versions).
    return type(error).__name__ == "ClientDisconnect"
