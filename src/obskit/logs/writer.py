"""obskit's own log chain in one call: level gate, enrichment, capture taps, rendering, writing.

When obskit owns structlog and renders JSON with no extra processor, its chain is fixed (gate,
:class:`~obskit.logs.processors.Enricher`, render, hand to the holder or the sink). The
:class:`LineWriter` does those steps without walking the processor list, and its
:meth:`LineWriter.write_line` finishes a line that a caller built itself under the writer's
enricher (the access line, whose flat fields need no second redaction). A line written here is
byte for byte the line the chain writes; ``tests/test_logs_writer.py`` compares the two.
"""

from __future__ import annotations

from typing import Any, Protocol

from obskit._semconv import METHOD_LEVEL
from obskit.logs.processors import Enricher
from obskit.logs.render import LineSink, json_line, json_renderer

__all__ = ["Gate", "LineHolder", "LineWriter"]


class LineHolder(Protocol):
    """Where lines below the emit level go while their trace is undecided (the tail sampler)."""

    def active(self) -> bool:
        """Whether the current context belongs to a trace whose lines may be held."""

    def hold(self, line: bytes | str, event_dict: dict[str, Any]) -> None:
        """Keep ``line`` until the trace is decided (or count it as discarded)."""


class Gate:
    """Level state shared by every logger; changed in place by ``configure()``."""

    def __init__(self) -> None:
        self.lowest = 20  # lowest level that does any work at all (emit or hold)
        self.emit = 20  # lowest level written out directly
        self.holder: LineHolder | None = None


class LineWriter:
    """Writes lines exactly as obskit's JSON chain does, in one call.

    ``enricher`` is None while the chain is not the fixed one (console output, an extra
    processor, structlog left to the application): callers then use the chain. ``gate`` and
    ``sink`` are the chain's own (shared, changed in place by ``configure()``).
    """

    def __init__(self, gate: Gate, sink: LineSink) -> None:
        self.gate = gate
        self.sink = sink
        self.enricher: Enricher | None = None

    def emit(self, method: str, event_dict: dict[str, Any]) -> None:
        """Write the line for a structlog-style ``event_dict`` (``event``, ``_logger``, keys)."""
        enricher = self.enricher
        if enricher is None:
            raise RuntimeError("LineWriter.emit without a configured chain")
        level = METHOD_LEVEL.get(method, 20)
        gate = self.gate
        if level < gate.emit:
            holder = gate.holder
            if holder is None or not holder.active():
                return
        line = enricher(None, method, event_dict)
        sink = self.sink
        if sink.taps:
            sink.tap(line)
        if level < gate.emit:
            self._hold(line)
        else:
            sink.write_terminated(json_line(line))

    def write_line(self, level: int, line: dict[str, Any]) -> None:
        """Hand a finished ``line`` (made under :attr:`enricher`, for a ``level`` the caller let
        through the gate as :meth:`emit` does) to the taps, then write it or hold it."""
        sink = self.sink
        if sink.taps:
            sink.tap(line)
        if level < self.gate.emit:
            self._hold(line)
        else:
            sink.write_terminated(json_line(line))

    def _hold(self, line: dict[str, Any]) -> None:
        holder = self.gate.holder
        if holder is not None:
            holder.hold(json_renderer(None, "", line), line)
