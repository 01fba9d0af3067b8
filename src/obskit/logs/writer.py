"""obskit's own log chain in one call: level gate, enrichment, capture taps, rendering, writing.

When obskit owns structlog and renders JSON with no extra processor, its chain is fixed (gate,
:class:`~obskit.logs.processors.Enricher`, render, hand to the holder or the sink). The
:class:`LineWriter` does those steps without walking the processor list; a line written here is
byte for byte the line the chain writes (``tests/test_logs_writer.py`` compares the two).

A line written again and again with the same logger, level and event (the access line) is a
:class:`LinePlan`: prepared once, it writes the chain's own line for the fields of each call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from obskit import _guard
from obskit._semconv import METHOD_LEVEL
from obskit.logs.processors import Enricher
from obskit.logs.render import LINE_OPTION as _LINE_OPTION
from obskit.logs.render import LineEncodeError as _LineEncodeError
from obskit.logs.render import LineSink, json_line, json_renderer
from obskit.logs.render import line_dumps as _line_dumps

__all__ = ["Gate", "LineHolder", "LinePlan", "LineWriter"]

_MAX_LABELS = 1024  # label values remembered clean, per plan and policy


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

    def admits(self, level: int) -> bool:
        """Whether a line at ``level`` is written, or held while its trace is undecided (from
        ``lowest`` up); else it is dropped at once."""
        if level >= self.emit:
            return True
        if level < self.lowest:
            return False
        holder = self.holder
        return holder is not None and holder.active()


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
        if self.gate.admits(level):
            self.write_line(level, enricher(None, method, event_dict))

    def write_line(self, level: int, line: dict[str, Any]) -> None:
        """Hand a finished ``line`` (made under :attr:`enricher`, at a ``level`` the gate
        admitted) to the taps, then write it or hold it for its trace."""
        sink = self.sink
        if sink.taps:
            sink.tap(line)
        if level < self.gate.emit:
            holder = self.gate.holder
            if holder is not None:
                holder.hold(json_renderer(None, "", line), line)
            return
        # json_line and the sink's write_terminated, inline: two Python frames fewer per line.
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


class LinePlan:
    """One line a caller writes again and again (the access line: one logger, level and event,
    the same flat keys), prepared once; :meth:`write` gives it the fields of each call.

    The line is the chain's own: under obskit's fixed JSON chain (the writer's current
    ``enricher``, read at each write, so a reconfiguration applies at once) it is gated, its
    fields redacted as :class:`~obskit.logs.processors.Enricher` redacts a call's keys, laid out
    by :meth:`Enricher.line <obskit.logs.processors.Enricher.line>` and written or held in one
    call; under any other chain it goes through ``fallback``, the logger's method.

    The keys a write may carry are declared: ``texts`` (text values), ``labels`` (text values
    that repeat, a method or a route template) and ``numbers`` (int or float values). While the
    policy finds none of them secret (decided once per policy), only the texts are cleaned, as
    the policy's walk of the mapping would clean them, each label once per policy (a bounded
    number of them); otherwise, or for a key not declared, the walk itself runs.
    """

    __slots__ = (
        "_fallback",
        "_policy",
        "_writer",
        "event",
        "keys",
        "labels",
        "level",
        "logger_name",
        "method",
        "texts",
    )

    def __init__(
        self,
        writer: LineWriter | None,
        fallback: Callable[..., Any],
        method: str,
        logger_name: str,
        event: str,
        *,
        texts: Iterable[str] = (),
        labels: Iterable[str] = (),
        numbers: Iterable[str] = (),
    ) -> None:
        self._writer, self._fallback = writer, fallback
        # The line's head, as Enricher.line takes it, and the level the gate compares.
        self.method, self.logger_name, self.event = method, logger_name, event
        self.level = METHOD_LEVEL[method]
        self.texts, self.labels = tuple(texts), tuple(labels)
        self.keys = frozenset((*self.texts, *self.labels, *numbers))
        # (the policy last seen, whether it leaves all the keys to the text rules, the labels it
        # cleaned): a memo of facts about that policy, checked by identity on each line (a new
        # configuration brings a new policy); it keeps no runtime alive.
        self._policy: tuple[object, bool, dict[str, str]] = (None, False, {})

    def write(self, fields: dict[str, Any]) -> None:
        """Write (or hold, or drop below the level) the line for ``fields`` (a fresh dict: its
        text values may be replaced in place); never raises."""
        writer = self._writer
        enricher = writer.enricher if writer is not None else None
        if writer is None or enricher is None:
            self._fallback(self.event, **fields)
            return
        try:
            level = self.level
            gate = writer.gate
            if level < gate.emit and not gate.admits(level):
                return
            redactor = enricher.redactor
            clean: Mapping[str, Any] = fields
            if redactor is not None:
                policy = self._policy
                if policy[0] is not redactor:
                    plain = not any(map(redactor.is_secret_key, self.keys))
                    policy = self._policy = (redactor, plain, {})
                if policy[1] and self.keys.issuperset(fields):
                    memo = policy[2]
                    for key in self.labels:
                        value = fields.get(key)
                        if value:
                            text = memo.get(value)
                            if text is None:
                                text = redactor.clean_text(value)
                                if len(memo) < _MAX_LABELS:
                                    memo[value] = text
                            fields[key] = text
                    for key in self.texts:
                        value = fields.get(key)
                        if value:
                            fields[key] = redactor.clean_text(value)
                else:
                    clean = redactor.clean_mapping(fields)
            writer.write_line(
                level, enricher.line(self.method, self.logger_name, self.event, clean)
            )
        except Exception as exc:
            _guard.report("logs.chain", exc)
