"""One structured access-log line per request, through obskit's log chain.

The line is written while the request's context and span are still current, so it carries the
correlation id, tenant and trace ids like every other line of the request. Secret query values
(``?token=...``) are replaced before the path is logged or put on a span.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from obskit import _guard
from obskit.logs import REDACTED, Redactor, get_logger
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
_MAX_QUERY: Final = 2048


class QueryRedactor:
    """Replaces the values of secret-looking query parameters (``token``, ``api_key``, ...)."""

    def __init__(self, redactor: Redactor | None) -> None:
        self._redactor = redactor

    def __call__(self, query: str) -> str:
        """``query`` with secret values replaced; truncated to a bounded length."""
        if not query:
            return ""
        if len(query) > _MAX_QUERY:
            query = query[:_MAX_QUERY]
        redactor = self._redactor
        if redactor is None:
            return query
        pairs = parse_qsl(query, keep_blank_values=True)
        if not any(redactor.is_secret_key(key) for key, _ in pairs):
            return query
        return urlencode(
            [(key, REDACTED if redactor.is_secret_key(key) else val) for key, val in pairs],
            safe="[]",
        )


# Every key the access line can have; its fast path is taken only if none of them is secret.
_KEYS: Final = (
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "bytes",
    "ttfb_ms",
    "client",
    "error_type",
)


class AccessLog:
    """Writes the access line of a finished request.

    While obskit's fixed JSON chain is configured, the line goes straight to its
    :class:`~obskit.logs.writer.LineWriter`: the fields are built here, flat, so only their text
    values need redacting (keys were checked once per configuration); otherwise, and for a
    request that raised, it goes through the logger like any other line. Both write the same line.
    """

    def __init__(self) -> None:
        logger = get_logger(LOGGER_NAME)
        self._info = logger.info
        self._error = logger.error
        self._writer = log_setup.writer_for(logger)
        # (enricher checked, whether the fast path may be used with it)
        self._checked: tuple[object, bool] = (None, False)

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
        """
        writer = self._writer
        enricher = writer.enricher if writer is not None else None
        direct = False
        if enricher is not None and error is None:
            checked = self._checked
            if checked[0] is not enricher:
                checked = self._checked = (enricher, _keys_are_plain(enricher.redactor))
            direct = checked[1]
            redactor = enricher.redactor
            if direct and redactor is not None:
                # The only redaction the chain would apply to these flat, non-secret keys.
                clean = redactor.clean_text
                method, route, path = clean(method), clean(route), clean(path)
                if client:
                    client = clean(client)
                if error_type:
                    error_type = clean(error_type)
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "path": path,
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
        if direct:
            try:
                writer.emit_trusted("info", LOGGER_NAME, "http.request", fields)  # type: ignore[union-attr]
            except Exception as exc:
                _guard.report("logs.chain", exc)
            return
        if error is not None:
            self._error("http.request", exc_info=error, **fields)
            return
        self._info("http.request", **fields)


def _keys_are_plain(redactor: Redactor | None) -> bool:
    return redactor is None or not any(redactor.is_secret_key(key) for key in _KEYS)


def take_over_server_logs(obskit_writes_access_lines: bool) -> None:
    """Route the servers' loggers through obskit's chain; drop their access lines if obskit's own
    replace them. Servers (re)configure their loggers before the application starts serving, so
    the middlewares call this at startup and on their first request."""
    from obskit.logs import setup as log_setup

    log_setup.adopt_server_loggers()
    if obskit_writes_access_lines:
        silence_server_access_logs()


def _drop(record: logging.LogRecord) -> bool:
    return False


_silenced: list[str] = []


def silence_server_access_logs() -> None:
    """Drop uvicorn's and gunicorn's own access lines: obskit writes one per request instead."""
    for name in SERVER_ACCESS_LOGGERS:
        if name not in _silenced:
            # A filter survives the servers re-applying their logging configuration at startup.
            logging.getLogger(name).addFilter(_drop)
            _silenced.append(name)


def restore_server_access_logs() -> None:
    """Undo :func:`silence_server_access_logs` (at shutdown)."""
    while _silenced:
        logging.getLogger(_silenced.pop()).removeFilter(_drop)
