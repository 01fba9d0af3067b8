"""One structured access-log line per request, through obskit's log chain.

The line is written while the request's context and span are still current, so it carries the
correlation id, tenant and trace ids like every other line of the request. Secret query values
(``?token=...``) are replaced before the path is logged or put on a span.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from obskit import _guard, context
from obskit.logs import REDACTED, Redactor, get_logger
from obskit.logs import setup as log_setup
from obskit.logs.processors import Enricher

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
_MAX_LABELS: Final = 1024
# The keys of the context the middleware binds; their values are checked ids (see write()).
_ID_KEYS: Final = frozenset({context.CORRELATION_ID, context.TENANT_ID})
_context_fields = context.fields


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
        self._plan = _FastPlan(None)

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
        request_fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Log one request (durations in milliseconds, to the microsecond).

        A request that raised is logged at error level with the exception as structured fields,
        inside the request's context: the server's own traceback line carries no request ids.
        ``request_fields`` is the context the middleware bound for the request: while it is still
        the whole current context and holds only the correlation and tenant ids (which passed
        :func:`obskit.context.clean_id` or were generated, so carry no credential text), it is
        not redacted again.
        """
        writer = self._writer
        plan: _FastPlan | None = None
        context_clean = False
        if writer is not None and error is None:
            enricher = writer.enricher
            if enricher is not None:
                plan = self._plan
                if plan.enricher is not enricher:
                    plan = self._plan = _FastPlan(enricher)
                if not plan.fast:
                    plan = None
                else:
                    context_clean = (
                        request_fields is not None
                        and plan.ids_plain
                        and _context_fields() is request_fields
                        and request_fields.keys() <= _ID_KEYS
                    )
                    redactor = plan.redactor
                    if redactor is not None:
                        # All the chain would redact in these flat fields with non-secret keys.
                        labels = plan.labels
                        method = labels.get(method) or plan.label(method)
                        route = labels.get(route) or plan.label(route)
                        path = redactor.clean_text(path)
                        if client:
                            client = redactor.clean_text(client)
                        if error_type:
                            error_type = redactor.clean_text(error_type)
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
        if plan is not None:
            try:
                writer.emit_trusted(  # type: ignore[union-attr]
                    plan.enricher, "info", LOGGER_NAME, "http.request", fields, context_clean
                )
            except Exception as exc:
                _guard.report("logs.chain", exc)
            return
        if error is not None:
            self._error("http.request", exc_info=error, **fields)
            return
        self._info("http.request", **fields)


class _FastPlan:
    """What the access line's fast path may do under one configuration (one enricher).

    Swapped whole when the configuration changes, so a line never mixes two configurations.
    """

    __slots__ = ("enricher", "fast", "ids_plain", "labels", "redactor")

    def __init__(self, enricher: Enricher | None) -> None:
        self.enricher: Any = enricher
        redactor = self.redactor = enricher.redactor if enricher is not None else None
        # The fast path is the chain only if none of the line's keys is secret (such a value
        # would be replaced whole); the request's id context only if its keys are not.
        plain = redactor.is_secret_key if redactor is not None else None
        self.fast = enricher is not None and (plain is None or not any(map(plain, _KEYS)))
        self.ids_plain = plain is None or not any(map(plain, _ID_KEYS))
        # Methods and route templates repeat: each is cleaned once (bounded).
        self.labels: dict[str, str] = {}

    def label(self, text: str) -> str:
        """``text`` cleaned, remembered (methods and route templates are few)."""
        clean = self.labels.get(text)
        if clean is None:
            redactor = self.redactor
            clean = text if redactor is None else redactor.clean_text(text)
            if len(self.labels) < _MAX_LABELS:
                self.labels[text] = clean
        return clean


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
