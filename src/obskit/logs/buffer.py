"""Debug lines that follow their trace's keep/drop decision.

Lines below the emit level (``log_level``) but at or above ``log_buffer_level``, logged inside a
trace that is not decided yet, are held here: written, in order, when the trace is kept (each
line was rendered when it was logged, so it carries its original timestamp); discarded and counted
when it is dropped. Inside a trace already kept a line is written at once. Bounded per trace and
in total; a line that does not fit is discarded and counted.

This is the :class:`obskit.logs.setup.LineHolder` installed by the tail sampler's wiring; the
sampler calls :meth:`TraceLogBuffer.release` with every decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from obskit import _locks
from obskit.logs import setup as log_setup
from obskit.logs.processors import current_trace_id as _current_trace_id

__all__ = ["TraceLogBuffer"]

# Mirrors obskit.tracing.tail's states without importing the tracing package.
_PENDING, _KEPT = 1, 2


class TraceLogBuffer:
    """Holds below-emit lines per undecided trace until the trace's decision."""

    def __init__(
        self,
        state: Callable[[int], int],
        *,
        max_lines_per_trace: int = 200,
        max_bytes: int = 4 * 1024 * 1024,
        write: Callable[[bytes | str], None] | None = None,
    ) -> None:
        self._state = state
        self._max_lines = max_lines_per_trace
        self._max_bytes = max_bytes
        self._write = write if write is not None else _write_to_sink
        self._lock = _locks.rlock()
        self._held: dict[int, list[bytes | str]] = {}
        self._bytes = 0
        self.counts = {"held": 0, "written": 0, "discarded": 0, "overflow": 0}

    def active(self) -> bool:
        """Whether the current trace is undecided or kept (so rendering the line is worth it)."""
        trace_id = _current_trace_id()
        return bool(trace_id) and self._state(trace_id) in (_PENDING, _KEPT)

    def hold(self, line: bytes | str, event_dict: dict[str, Any]) -> None:
        """Hold ``line`` for the current trace, or write it now if that trace is already kept."""
        trace_id = _current_trace_id()
        state = self._state(trace_id) if trace_id else 0
        if state == _KEPT:
            self._write(line)
            self._count("written", 1)
            return
        if state != _PENDING:
            self._count("discarded", 1)
            return
        size = len(line)
        with self._lock:
            lines = self._held.get(trace_id)
            if (lines is not None and len(lines) >= self._max_lines) or (
                self._bytes + size > self._max_bytes
            ):
                self.counts["overflow"] += 1
                return
            if lines is None:
                lines = self._held[trace_id] = []
            lines.append(line)
            self._bytes += size
            self.counts["held"] += 1
        # The trace may have been decided between the check and the append; its release then
        # found nothing, so settle the line here (the decision is remembered before release).
        state = self._state(trace_id)
        if state != _PENDING:
            self.release(trace_id, state == _KEPT)

    def release(self, trace_id: int, keep: bool) -> None:
        """The trace is decided: write its held lines in order, or discard them."""
        if not self._held:
            return
        with self._lock:
            lines = self._held.pop(trace_id, None)
            if lines is None:
                return
            self._bytes -= sum(len(line) for line in lines)
            self.counts["written" if keep else "discarded"] += len(lines)
        if keep:
            for line in lines:
                self._write(line)

    def held(self) -> tuple[int, int]:
        """Traces with held lines and the bytes held."""
        with self._lock:
            return len(self._held), self._bytes

    def _count(self, outcome: str, n: int) -> None:
        with self._lock:
            self.counts[outcome] += n


def _write_to_sink(line: bytes | str) -> None:
    log_setup.sink().write(line)
