"""Configuring structlog and bridging the standard library's ``logging`` through the same chain.

The chain list, the sink and the level gate are single long-lived objects that ``configure()``
updates in place, so loggers created (and cached by structlog) before ``init()`` or before a
reconfiguration follow the current configuration.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from structlog import BoundLoggerBase, DropEvent

from obskit import _guard, _live
from obskit._config import Settings
from obskit._semconv import LEVELS, METHOD_LEVEL
from obskit.logs import libraries, redaction, server_errors
from obskit.logs.processors import Enricher, neutralise_control_chars
from obskit.logs.render import LineSink, json_renderer
from obskit.logs.writer import Gate, LineHolder, LinePlan, LineWriter

__all__ = [
    "LineHolder",
    "ObskitBoundLogger",
    "StdlibBridge",
    "adopt_server_loggers",
    "bridge",
    "configure",
    "get_logger",
    "line_plan",
    "processors",
    "unconfigure",
    "writer_for",
]

SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")

Processor = Callable[[Any, str, dict[str, Any]], Any]

_gate = Gate()
_sink = LineSink(None)
_chain: list[Processor] = []
# The chain in one call while it is obskit's fixed JSON chain (enricher None otherwise).
_writer = LineWriter(_gate, _sink)


class ObskitBoundLogger(BoundLoggerBase):
    """A structlog bound logger whose level follows obskit's current configuration.

    A call below every configured level returns after one comparison.
    """

    def _emit(self, method: str, level: int, event: Any, args: tuple[Any, ...], kw: Any) -> Any:
        if level < _gate.lowest:
            return None
        if args:
            try:
                event = event % args
            except Exception:
                event = f"{event} {args!r}"
        # structlog's _proxy_to_logger, without the steps obskit's own chain does not need.
        event_dict = {**self._context, **kw} if kw else self._context.copy()
        event_dict["event"] = event
        try:
            if _writer.enricher is not None and self._processors is _chain:
                _writer.emit(method, event_dict)
                return None
            result: Any = event_dict
            for processor in self._processors:
                result = processor(self._logger, method, result)
            return getattr(self._logger, method)(result)
        except DropEvent:
            return None
        except Exception as exc:
            _guard.report("logs.chain", exc)
            return None

    def debug(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at debug level."""
        return self._emit("debug", 10, event, args, kw)

    def info(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at info level."""
        return self._emit("info", 20, event, args, kw)

    msg = info

    def warning(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at warning level."""
        return self._emit("warning", 30, event, args, kw)

    warn = warning

    def error(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at error level."""
        return self._emit("error", 40, event, args, kw)

    def exception(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at error level with the current exception attached."""
        kw.setdefault("exc_info", True)
        return self._emit("error", 40, event, args, kw)

    def critical(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at critical level."""
        return self._emit("critical", 50, event, args, kw)

    fatal = critical

    def log(self, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        """Log at a numeric stdlib level."""
        name = logging.getLevelName(level).lower()
        return self._emit(name if name in LEVELS else "info", level, event, args, kw)


def _early_gate(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop a below-emit line at once unless its trace may still keep it."""
    if not _gate.admits(METHOD_LEVEL.get(method_name, 20)):
        raise DropEvent
    return event_dict


class _Emit:
    """Last step: render, then hand below-emit lines to the holder instead of the sink."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
        if _sink.taps:
            _sink.tap(event_dict)
        line = self._renderer(logger, method_name, event_dict)
        if METHOD_LEVEL.get(method_name, 20) < _gate.emit:
            holder = _gate.holder
            if holder is not None:
                holder.hold(line, event_dict)
            raise DropEvent
        return line


def _service(settings: Settings) -> dict[str, Any]:
    # The pid is a constant of the line's fixed fields, decided here and re-made in a forked
    # child (_after_fork), never looked up per line.
    return {
        "service": settings.service_name,
        "service_version": settings.service_version,
        "environment": settings.environment,
        "pid": os.getpid(),
    }


# Every Enricher made here, so that a forked child corrects their pid.
_enrichers: weakref.WeakSet[Enricher] = weakref.WeakSet()
_fork_hook = False


def _enricher(*args: Any) -> Enricher:
    global _fork_hook
    enricher = Enricher(*args)
    _enrichers.add(enricher)
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook = True
        os.register_at_fork(after_in_child=_after_fork)
    return enricher


def _after_fork() -> None:
    pid = os.getpid()
    for enricher in list(_enrichers):
        enricher.update_service(pid=pid)


def processors(settings: Settings | None = None) -> list[Processor]:
    """obskit's processors (ids, context, service, exceptions, redaction) without a renderer.

    For applications that own their structlog configuration: put these before your renderer.
    Without ``settings``, those of the live ``init()`` (typically ``configure_logging=False``).
    """
    if settings is None:
        runtime = _live.current()
        if runtime is None:
            raise RuntimeError("obskit.logs.processors() needs obskit.init() first")
        settings = runtime.settings
    return [_enricher(_service(settings)), redaction.for_settings(settings)]


def _wants_console(settings: Settings, stream: Any) -> bool:
    if settings.log_format != "auto":
        return settings.log_format == "console"
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class StdlibBridge(logging.Handler):
    """A root ``logging`` handler that sends every record through obskit's chain."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "asctime",
        "taskName",
        # uvicorn's copy of the message with ANSI colour codes, for its own terminal formatter.
        "color_message",
    }

    def emit(self, record: logging.LogRecord) -> None:
        """Convert ``record`` to an event dict and run the chain; never raises."""
        try:
            method = record.levelname.lower()
            if method not in METHOD_LEVEL:
                method = "debug" if record.levelno < 20 else "info"
            message = _message(record)
            event_dict: dict[str, Any] = {
                "event": message,
                "_logger": record.name,
                "_created": record.created,
            }
            for key, value in record.__dict__.items():
                if key not in self._STANDARD and not key.startswith("_"):
                    event_dict[key] = value
            if record.exc_info and record.exc_info[0] is not None:
                event_dict["exc_info"] = record.exc_info
            if _writer.enricher is not None:
                _writer.emit(method, event_dict)
                return
            result: Any = event_dict
            for processor in _chain:
                result = processor(None, method, result)
            _sink.write(result)
        except DropEvent:
            return
        except Exception as exc:
            _guard.report("logs.stdlib_bridge", exc)


def _message(record: logging.LogRecord) -> str:
    """The record's message; ``%(name)s`` arguments under secret names are redacted first
    (once formatted, a value no longer stands next to its name)."""
    args: Any = record.args
    if isinstance(args, Mapping) and args:
        args = redaction.current().clean_mapping(args)
    try:
        return record.getMessage() if args is record.args else str(record.msg) % args
    except Exception:
        return f"{record.msg!s} {args!r}"


_bridge = StdlibBridge()
_saved: dict[str, Any] = {}


def configure(settings: Settings, stream: Any = None) -> None:
    """Apply ``settings`` to structlog and the stdlib root logger (when obskit owns logging)."""
    target = stream if stream is not None else getattr(sys, settings.log_stream)
    console = _wants_console(settings, target)
    emit_level = LEVELS[settings.log_level]
    buffer_level = LEVELS.get(settings.log_buffer_level or "", emit_level)
    _gate.emit = emit_level
    _gate.lowest = min(emit_level, buffer_level) if settings.tracing else emit_level
    _sink.stream = target
    # The one redaction policy of every signal: it also bounds values when redact=False.
    enricher = _enricher(_service(settings), redaction.for_settings(settings), not console)
    chain: list[Processor] = [_early_gate, enricher]
    extra_redaction = settings.extras.get("redact_processor")
    if extra_redaction is not None:
        chain.append(extra_redaction)
    fixed = not console and extra_redaction is None and settings.configure_logging
    _writer.enricher = enricher if fixed else None
    if console:
        chain.append(neutralise_control_chars)
        # The console renderer prints a traceback itself.
        renderer: Processor = structlog.dev.ConsoleRenderer(colors=console)
    else:
        renderer = json_renderer
    chain.append(_Emit(renderer))
    _chain[:] = chain
    if not settings.configure_logging:
        return
    structlog.configure(
        processors=_chain,  # type: ignore[arg-type]  # the same list object, updated in place
        wrapper_class=ObskitBoundLogger,
        logger_factory=lambda *args: _sink,
        cache_logger_on_first_use=True,
        context_class=dict,
    )
    root = logging.getLogger()
    if "root" not in _saved:
        _saved["root"] = (root.level, list(root.handlers))
    for handler in list(root.handlers):
        if handler is not _bridge:
            root.removeHandler(handler)
    if _bridge not in root.handlers:
        root.addHandler(_bridge)
    root.setLevel(_gate.lowest)
    libraries.hold_at(settings.log_quiet_loggers, emit_level)
    adopt_server_loggers()


def adopt_server_loggers(names: Sequence[str] = SERVER_LOGGERS) -> None:
    """Route uvicorn's and gunicorn's loggers through the root bridge instead of their handlers.

    Servers configure their loggers before loading the application, and some again at startup;
    the middleware calls this again at ASGI startup so the takeover survives.
    """
    if "root" not in _saved:
        return
    server_errors.install_error_filter()
    for name in names:
        logger = logging.getLogger(name)
        key = f"logger:{name}"
        if key not in _saved:
            _saved[key] = (list(logger.handlers), logger.propagate)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def bridge() -> StdlibBridge:
    """The root handler obskit installs (``logging.config`` uses it for the servers' parents)."""
    return _bridge


def writer_for(logger: Any) -> LineWriter | None:
    """The one-call writer, if ``logger`` (from :func:`get_logger`) writes through obskit's chain.

    Its ``enricher`` is None whenever that chain is not the fixed JSON one.
    """
    bound = logger.bind()
    if isinstance(bound, ObskitBoundLogger) and bound._processors is _chain:
        return _writer
    return None


def line_plan(name: str, method: str, event: str, **keys: Iterable[str]) -> LinePlan:
    """The :class:`~obskit.logs.writer.LinePlan` of a line logger ``name`` writes often at
    ``method``'s level with ``event`` (a constant of obskit's: it is not redacted); ``keys``
    declares its fields (``texts=``, ``labels=``, ``numbers=``, see the plan)."""
    logger = get_logger(name)
    return LinePlan(writer_for(logger), getattr(logger, method), method, name, event, **keys)


def set_holder(holder: LineHolder | None) -> None:
    """Install (or remove) the tail sampler's holder for below-emit lines."""
    _gate.holder = holder


def holder() -> LineHolder | None:
    """The holder installed for below-emit lines, if any."""
    return _gate.holder


def sink() -> LineSink:
    """The sink at the end of the chain (``obskit.testing`` taps it)."""
    return _sink


def unconfigure() -> None:
    """Undo ``configure()``: restore the stdlib loggers and structlog's defaults."""
    root = logging.getLogger()
    if "root" in _saved:
        level, handlers = _saved.pop("root")
        root.removeHandler(_bridge)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()
        libraries.release()
        server_errors.remove_error_filter()
    for key in [k for k in _saved if k.startswith("logger:")]:
        handlers, propagate = _saved.pop(key)
        logger = logging.getLogger(key.removeprefix("logger:"))
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate
    # Loggers cached by structlog keep this chain: leave a plain JSON one writing to stdout.
    _chain[:] = [_early_gate, Enricher({}, redaction.Redactor()), _Emit(json_renderer)]
    _writer.enricher = None
    _gate.emit = _gate.lowest = 20
    _gate.holder = None
    _sink.stream = sys.stdout


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog bound logger; ``name`` appears as the line's ``logger`` field."""
    if name is not None:
        # "logger" is a parameter of structlog's factory; the Enricher renames it back.
        initial_values["_logger"] = name
    return structlog.get_logger(**initial_values)
