"""One structured access-log line per request, through obskit's log chain.

The line is written while the request's context and span are still current, so it carries the
correlation id, tenant and trace ids like every other line of the request. Its fields go through
the one redaction policy (:mod:`obskit.logs.redaction`) like every line's: secrets in the path and
query (``?token=...``, ``;access_token=...``) and path segments the route names as secret
parameters (``/reset/{token}``) are replaced, and long values cut.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from obskit import _guard, context
from obskit.logs import Redactor, get_logger, redaction
from obskit.logs import setup as log_setup
from obskit.logs.processors import STRUCTLOG_VARS as _STRUCTLOG_VARS
from obskit.logs.processors import Enricher, format_timestamp
from obskit.logs.render import LINE_OPTION as _LINE_OPTION
from obskit.logs.render import LineEncodeError as _LineEncodeError
from obskit.logs.render import json_line
from obskit.logs.render import line_dumps as _line_dumps

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
_MAX_LABELS: Final = 1024
# The keys of the context the middleware binds; their values are checked ids (see write()).
_ID_KEYS: Final = frozenset({context.CORRELATION_ID, context.TENANT_ID})
_context_fields = context.current_fields
_now = format_timestamp.now
_INFO: Final = 20
_EVENT: Final = "http.request"
_EMPTY: Final[Mapping[str, Any]] = {}


class QueryRedactor:
    """A request's query string as a span carries it: secret values replaced (``?token=...``,
    ``api_key=...``), bounded like every value (the policy of :mod:`obskit.logs.redaction`)."""

    def __init__(self, redactor: Redactor | None) -> None:
        self._redactor = redactor if redactor is not None else Redactor(secrets=False)

    def __call__(self, query: str) -> str:
        """``query`` cleaned and bounded."""
        return self._redactor.clean_text(query) if query else ""


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

    While obskit's fixed JSON chain is configured, the line is built here, whole, in the
    order and with the values the chain's :class:`~obskit.logs.processors.Enricher` gives it:
    its fields are flat, so only their text values need redacting (keys were checked once per
    configuration). Otherwise, and for a request that raised, it goes through the logger like any
    other line. Both write the same bytes (``tests/test_logs_writer.py``).
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
        ``path`` is the request target (path and raw query): it is cleaned here.
        ``request_fields`` is the context the middleware bound for the request: while it is still
        the whole current context and holds only the correlation and tenant ids, each of which
        the policy leaves as it is (short plain text or hex, checked at once), it is not walked
        again.
        """
        writer = self._writer
        if writer is not None and error is None:
            plan = self._plan
            enricher = writer.enricher
            if plan.enricher is not enricher:
                plan = self._plan = _FastPlan(enricher)
            if enricher is not None and plan.fast:
                try:
                    # The gate, as LineWriter.emit applies it to an info line.
                    gate = writer.gate
                    if gate.emit > _INFO:
                        if gate.lowest > _INFO:
                            return
                        holder = gate.holder
                        if holder is None or not holder.active():
                            return
                    redactor = plan.redactor
                    if redactor is not None:
                        # All the chain would redact and bound in these flat fields with
                        # non-secret keys (clean_text returns at once for short plain text).
                        labels = plan.labels
                        method = labels.get(method) or plan.label(method)
                        path = redactor.clean_path(redactor.clean_text(path), route)
                        route = labels.get(route) or plan.label(route)
                        if client:
                            client = redactor.clean_text(client)
                        if error_type:
                            error_type = redactor.clean_text(error_type)
                    theirs: Mapping[str, Any] = _EMPTY
                    if _STRUCTLOG_VARS is None or _STRUCTLOG_VARS:
                        theirs = enricher.structlog_fields()
                    bound = _context_fields()
                    if (
                        bound
                        and redactor is not None
                        and not (
                            bound is request_fields
                            and plan.ids_plain
                            and _ID_KEYS.issuperset(bound)
                            and all(redactor.clean_text(v) is v for v in bound.values())
                        )
                    ):
                        bound = enricher.clean_bound(bound)
                    # Enricher.line's dict, in its order: each later source wins a key, which
                    # keeps its first position (as a store into the dict does).
                    line: dict[str, Any] = {
                        "timestamp": _now(),
                        "level": "info",
                        "logger": LOGGER_NAME,
                        "event": _EVENT,
                        **plan.service,
                        **theirs,
                        **bound,
                    }
                    line["method"] = method
                    line["route"] = route
                    line["path"] = path
                    line["status"] = status
                    line["duration_ms"] = int(duration_s * 1e6) / 1000.0  # microsecond precision
                    line["bytes"] = body_bytes
                    if ttfb_s is not None:
                        line["ttfb_ms"] = int(ttfb_s * 1e6) / 1000.0
                    if client:
                        line["client"] = client
                    if error_type:
                        line["error_type"] = error_type
                    ids = enricher.span_ids()
                    if ids[1]:
                        line["trace_id"] = ids[1]
                        line["span_id"] = ids[2]
                    sink = writer.sink
                    if sink.taps or gate.emit > _INFO:
                        writer.write_line(_INFO, line)
                    else:
                        # json_line and write_terminated, inlined (two Python frames per line).
                        try:
                            data = _line_dumps(line, repr, _LINE_OPTION)
                        except _LineEncodeError:
                            data = json_line(line)
                        buffer = sink.buffer
                        if buffer is not None:
                            buffer.write(data)
                            buffer.flush()
                        else:
                            sink.write_terminated(data)
                except Exception as exc:
                    _guard.report("logs.chain", exc)
                return
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "path": redaction.current().clean_path(path, route),
            "status": status,
            "duration_ms": int(duration_s * 1e6) / 1000.0,
            "bytes": body_bytes,
        }
        if ttfb_s is not None:
            fields["ttfb_ms"] = int(ttfb_s * 1e6) / 1000.0
        if client:
            fields["client"] = client
        if error_type:
            fields["error_type"] = error_type
        if error is not None:
            self._error(_EVENT, exc_info=error, **fields)
            return
        self._info(_EVENT, **fields)


class _FastPlan:
    """What the access line's fast path may do under one configuration (one enricher).

    Swapped whole when the configuration changes, so a line never mixes two configurations.
    """

    __slots__ = ("enricher", "fast", "ids_plain", "labels", "redactor", "service")

    def __init__(self, enricher: Enricher | None) -> None:
        self.enricher = enricher
        redactor = self.redactor = enricher.redactor if enricher is not None else None
        self.service: Mapping[str, Any] = enricher.service if enricher is not None else _EMPTY
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
