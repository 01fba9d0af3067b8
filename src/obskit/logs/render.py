"""Rendering a line to JSON bytes and writing it out.

orjson is used when importable (an optional extra); anything it refuses (non-string keys are
fine, but lone surrogates from undecodable bytes or integers over 64 bits are not) falls back to
the standard library with ``ensure_ascii``, which can encode every ``str`` (an int too long to
write as text is replaced by a marker). A line is written with one ``write`` call, so lines from
different threads never interleave.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import IO, Any

from obskit import _locks
from obskit.logs import redaction_counts

__all__ = [
    "LINE_OPTION",
    "LineEncodeError",
    "LineSink",
    "json_line",
    "json_renderer",
    "line_dumps",
]


def _stdlib_dumps(event_dict: dict[str, Any]) -> bytes:
    try:
        return json.dumps(event_dict, default=repr, ensure_ascii=True).encode("ascii")
    except ValueError:  # an int longer than Python writes (sys.get_int_max_str_digits())
        writable = _writable(event_dict, 0)
        return json.dumps(writable, default=repr, ensure_ascii=True).encode("ascii")


def _writable(value: Any, depth: int) -> Any:
    """``value`` with every int too long to write as text replaced (counted as truncated); the
    redaction policy has already bounded the line's depth and size."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            redaction_counts.count("truncated", "log", 1)
            return f"...[truncated: an int of {value.bit_length()} bits]..."
        return value
    if depth > 20:
        return repr(type(value))
    if isinstance(value, dict):
        return {key: _writable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_writable(item, depth + 1) for item in value]
    return value


Renderer = Callable[[Any, str, dict[str, Any]], bytes]


def _make_renderers() -> tuple[Renderer, Callable[[dict[str, Any]], bytes]]:
    """The structlog renderer (a line without its newline) and the same line with its newline."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - exercised in the no-extras test job

        def render_stdlib(logger: Any, method_name: str, event_dict: dict[str, Any]) -> bytes:
            return _stdlib_dumps(event_dict)

        def line_stdlib(event_dict: dict[str, Any]) -> bytes:
            return _stdlib_dumps(event_dict) + b"\n"

        return render_stdlib, line_stdlib

    dumps = orjson.dumps
    # Non-string keys need OPT_NON_STR_KEYS, which slows every line: it is the second try only
    # (it changes nothing for string keys, so the line is the same either way).
    keys_option = orjson.OPT_NON_STR_KEYS
    # orjson writes the newline into the same buffer: no second bytes object per line.
    newline = orjson.OPT_APPEND_NEWLINE
    encode_error = orjson.JSONEncodeError

    # default and option are passed by position: orjson parses keywords slowly (keywords
    # doubled the cost of rendering an access line).
    def render(logger: Any, method_name: str, event_dict: dict[str, Any]) -> bytes:
        try:
            return dumps(event_dict, repr)
        except encode_error:
            try:
                return dumps(event_dict, repr, keys_option)
            except encode_error:
                return _stdlib_dumps(event_dict)

    def line(event_dict: dict[str, Any]) -> bytes:
        try:
            return dumps(event_dict, repr, newline)
        except encode_error:
            return render(None, "", event_dict) + b"\n"

    return render, line


json_renderer, json_line = _make_renderers()


class _NeverRaised(Exception):
    """Stands for orjson's encode error where orjson is not installed."""


def _one_call_line() -> tuple[Callable[[dict[str, Any], Any, int], bytes], int, type[Exception]]:
    try:
        import orjson
    except ImportError:  # pragma: no cover - exercised in the no-extras test job
        return (lambda event_dict, default, option: json_line(event_dict)), 0, _NeverRaised
    return orjson.dumps, orjson.OPT_APPEND_NEWLINE, orjson.JSONEncodeError


# For a hot path that renders its line without json_line's Python frame:
# ``line_dumps(event_dict, repr, LINE_OPTION)`` is json_line(event_dict) unless it raises
# LineEncodeError, in which case json_line(event_dict) gives the fallbacks' bytes.
line_dumps, LINE_OPTION, LineEncodeError = _one_call_line()


def _write_unbuffered(stream: Any, data: bytes) -> None:
    """A stream without ``.buffer``: a binary one (BytesIO, a file) or a text one."""
    try:
        stream.write(data)
    except TypeError:
        stream.write(data.decode("utf-8", "backslashreplace"))
    stream.flush()


class LineSink:
    """The structlog "logger" at the end of the chain: writes each rendered line to a stream.

    ``taps`` are lists that also receive every line's final event dict; ``obskit.testing`` uses
    them to capture what a block of code logged.
    """

    def __init__(self, stream: IO[bytes] | IO[str] | None = None) -> None:
        self.stream = stream
        self.taps: list[list[dict[str, Any]]] = []
        self._tap_lock = _locks.rlock()

    @property
    def stream(self) -> IO[bytes] | IO[str] | None:
        """Where lines go; a text stream's binary buffer is looked up once, when it is set."""
        return self._stream

    @stream.setter
    def stream(self, stream: IO[bytes] | IO[str] | None) -> None:
        self._stream = stream
        try:
            buffer = getattr(stream, "buffer", None)
        except ValueError:  # a detached text stream: written (and failing) the slow way
            buffer = None
        binary: Any = stream  # (typed IO[...], which a BufferedIOBase is not to mypy)
        if buffer is None and isinstance(binary, io.BufferedIOBase):
            buffer = binary  # a binary stream (a file, BytesIO) takes bytes as a buffer does
        # The binary buffer a line is written to with write() and flush(), when there is one
        # (else write_terminated() handles the stream); read by hot paths, set only here.
        self.buffer: IO[bytes] | None = buffer

    def write(self, line: bytes | str) -> None:
        """Write one rendered line (a trailing newline is added)."""
        if isinstance(line, str):
            line = line.encode("utf-8", "backslashreplace")
        self.write_terminated(line + b"\n")

    def write_terminated(self, data: bytes) -> None:
        """Write one rendered line that already ends with its newline: one write, then a flush,
        so lines of different threads never interleave and none waits in a buffer at a crash."""
        buffer = self.buffer
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        elif self._stream is not None:
            _write_unbuffered(self._stream, data)

    def tap(self, event_dict: dict[str, Any]) -> None:
        """Hand a copy of a final event dict to each active tap."""
        with self._tap_lock:
            for tap in self.taps:
                tap.append(dict(event_dict))

    # structlog calls the method named like the level; all of them write.
    msg = info = debug = warning = warn = error = critical = exception = fatal = log = write
