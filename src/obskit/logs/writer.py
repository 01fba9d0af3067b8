"""obskit's own log chain in one call: level gate, enrichment, capture taps, rendering, writing.

When obskit owns structlog and renders JSON with no extra processor, its chain is fixed (gate,
:class:`~obskit.logs.processors.Enricher`, render, hand to the holder or the sink). The
:class:`LineWriter` does those steps without walking the processor list, and its
:meth:`LineWriter.emit_trusted` lets a caller that builds its own flat, already clean fields (the
access line) skip redacting them again. A line written here is byte for byte the line the chain
writes; ``tests/test_logs_writer.py`` compares the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from obskit.logs.processors import Enricher
from obskit.logs.render import LineSink, json_line, json_renderer

__all__ = ["METHOD_LEVEL", "Gate", "LineHolder", "LineWriter"]

METHOD_LEVEL: Final = {
    "debug": 10,
    "info": 20,
    "msg": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
}


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
    processor, structlog left to the application): callers then use the chain.
    """

    def __init__(self, gate: Gate, sink: LineSink) -> None:
        self._gate = gate
        self._sink = sink
        self.enricher: Enricher | None = None

    def emit(self, method: str, event_dict: dict[str, Any]) -> None:
        """Write the line for a structlog-style ``event_dict`` (``event``, ``_logger``, keys)."""
        enricher = self.enricher
        if enricher is None:
            raise RuntimeError("LineWriter.emit without a configured chain")
        level = METHOD_LEVEL.get(method, 20)
        gate = self._gate
        if level < gate.emit:
            holder = gate.holder
            if holder is None or not holder.active():
                return
        line = enricher(None, method, event_dict)
        sink = self._sink
        if sink.taps:
            sink.tap(line)
        if level < gate.emit:
            self._hold(line)
        else:
            sink.write_terminated(json_line(line))

    def emit_trusted(
        self,
        enricher: Enricher,
        method: str,
        logger_name: str,
        event: str,
        fields: Mapping[str, Any],
        context_clean: bool = False,
    ) -> None:
        """Write a line whose ``fields`` (and, if ``context_clean``, the bound context) the
        caller vouches for (see :meth:`Enricher.line`) under ``enricher``: the writer's
        :attr:`enricher` the caller checked them against (a reconfiguration may replace it)."""
        level = METHOD_LEVEL.get(method, 20)
        gate = self._gate
        if level < gate.emit:
            if level < gate.lowest:
                return
            holder = gate.holder
            if holder is None or not holder.active():
                return
        line = enricher.line(method, logger_name, event, fields, None, context_clean)
        sink = self._sink
        if sink.taps:
            sink.tap(line)
        if level < gate.emit:
            self._hold(line)
        else:
            sink.write_terminated(json_line(line))

    def _hold(self, line: dict[str, Any]) -> None:
        holder = self._gate.holder
        if holder is not None:
            holder.hold(json_renderer(None, "", line), line)
