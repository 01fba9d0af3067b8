"""One structured access-log line per request, through obskit's log chain.

The line is written while the request's context and span are still current, so it carries the
correlation id, tenant and trace ids like every other line of the request. Its fields go through
the one redaction policy (:mod:`obskit.logs.redaction`) like every line's: secrets in the path and
query (``?token=...``, ``;access_token=...``) and path segments the route names as secret
parameters (``/reset/{token}``) are replaced, and long values cut.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from obskit.logs import Redactor, get_logger, redaction
from obskit.logs import setup as log_setup

__all__ = [
    "LOGGER_NAME",
    "AccessLog",
    "QueryRedactor",
    "restore_server_access_logs",
    "silence_server_access_logs",
    "take_over_server_logs",
]

LOGGER_NAME: Final = "obskit.access"
# The servers' own access loggers; obskit's line replaces theirs (never both).
SERVER_ACCESS_LOGGERS: Final = ("uvicorn.access", "gunicorn.access")
_EVENT: Final = "http.request"


class QueryRedactor:
    """A request's query string as a span carries it: secret values replaced (``?token=...``,
    ``api_key=...``), bounded like every value (the policy of :mod:`obskit.logs.redaction`)."""

    def __init__(self, redactor: Redactor | None) -> None:
        self._redactor = redactor if redactor is not None else Redactor(secrets=False)

    def __call__(self, query: str) -> str:
        """``query`` cleaned and bounded."""
        return self._redactor.clean_text(query) if query else ""


class AccessLog:
    """Writes the access line of a finished request.

    The line is one of the log chain's own, prepared once (:func:`obskit.logs.setup.line_plan`):
    gated, redacted, laid out and written exactly as ``logger.info("http.request", **fields)``
    would be, in one call. A request that raised is logged at error level through the logger,
    with the exception as structured fields.
    """

    def __init__(self) -> None:
        self._line = log_setup.line_plan(
            LOGGER_NAME,
            "info",
            _EVENT,
            texts=("path", "client", "error_type"),
            labels=("method", "route"),
            numbers=("status", "duration_ms", "bytes", "ttfb_ms"),
        )
        self._error = get_logger(LOGGER_NAME).error

    def write(
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        duration_s: float,
        ttfb_s: float | None,
        body_bytes: int,
        client: str | None,
        error_type: str,
        error: BaseException | None = None,
    ) -> None:
        """Log one request (durations in milliseconds, to the microsecond).

        A request that raised is logged at error level with the exception as structured fields,
        inside the request's context: the server's own traceback line carries no request ids.
        ``path`` is the request target (path and raw query): redacted with the other fields.
        """
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            # (The segments the route names as secret need the route: the policy's one step
            # that is the access line's own.)
            "path": redaction.current().clean_path(path, route),
            "status": status,
            "duration_ms": int(duration_s * 1e6) / 1000.0,  # microsecond precision
            "bytes": body_bytes,
        }
        if ttfb_s is not None:
            fields["ttfb_ms"] = int(ttfb_s * 1e6) / 1000.0
        if client:
            fields["client"] = client
        if error_type:
            fields["error_type"] = error_type
        if error is None:
            self._line.write(fields)
        else:
            self._error(_EVENT, exc_info=error, **fields)


def take_over_server_logs(obskit_writes_access_lines: bool) -> None:
    """Route the servers' loggers through obskit's chain; drop their access lines if obskit's own
    replace them. Servers (re)configure their loggers before the application starts serving, so
    the middlewares call this at startup and on their first request."""
    log_setup.adopt_server_loggers()
    if obskit_writes_access_lines:
        silence_server_access_logs()


def _drop(record: logging.LogRecord) -> bool:
    return False


# The server access loggers obskit silenced, with their handlers and propagation before that.
_silenced: dict[str, tuple[list[logging.Handler], bool]] = {}


def silence_server_access_logs() -> None:
    """Drop uvicorn's and gunicorn's own access lines: obskit writes one per request instead.

    The logger is also left without handlers and not propagating: uvicorn asks
    ``hasHandlers()`` before it formats the client address and quotes the path for its line, so
    an inert logger spares every request that work, not only the line.
    """
    for name in SERVER_ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if name not in _silenced:
            _silenced[name] = (list(logger.handlers), logger.propagate)
            # A filter survives the servers re-applying their logging configuration at startup.
            logger.addFilter(_drop)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = False


def restore_server_access_logs() -> None:
    """Undo :func:`silence_server_access_logs` (at shutdown)."""
    for name, (handlers, propagate) in list(_silenced.items()):
        logger = logging.getLogger(name)
        logger.removeFilter(_drop)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.propagate = propagate
        del _silenced[name]
