"""What the tail sampler tells others about a trace while it runs: the exemplar gate and the state
the log buffer asks about.

RED offers exemplars here (:mod:`obskit._exemplars`): an exemplar waits on its trace and is
applied only if the trace is kept; ``wants`` spares building one for a trace already dropped.
``state`` tells the debug-log buffer whether to hold a line, write it or discard it. Both read the
sampler's buffer and decision memory, the exemplar side under its lock, the state lock-free
(decisions are remembered before buffers are released).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from obskit import _guard
from obskit.tracing.pending import MAX_EXEMPLARS_PER_TRACE

if TYPE_CHECKING:
    from obskit.tracing.decisions import DecisionMemory
    from obskit.tracing.pending import PendingTrace

__all__ = ["DROPPED", "KEPT", "PENDING", "UNKNOWN", "TraceViews"]

# What a trace id is to the sampler right now (``TraceViews.state``).
UNKNOWN, PENDING, KEPT, DROPPED = 0, 1, 2, 3


class TraceViews:
    """The part of :class:`~obskit.tracing.tail.TailSampler` that others read."""

    # The sampler's own state.
    _pending: dict[int, PendingTrace]
    _open: dict[int, Any]
    _lock: threading.RLock
    _memory: DecisionMemory
    exemplars: dict[str, int]

    if TYPE_CHECKING:  # provided by RequestRoots (declared here for the type checker only)

        def _root_offers_locked(self, trace_id: int) -> list[Callable[[], None]] | None: ...

    @staticmethod
    def _apply_exemplars(applies: list[Callable[[], None]]) -> None:
        for apply in applies:
            try:
                apply()
            except Exception as exc:
                _guard.report("tracing.exemplar", exc)

    def offer(self, trace_id: int, apply: Callable[[], None]) -> None:
        """Exemplar gate: call ``apply`` when the trace is kept (now, or at its decision)."""
        with self._lock:
            entry = self._pending.get(trace_id)
            if entry is not None:
                if entry.exemplars is None:
                    entry.exemplars = []
                waiting: list[Callable[[], None]] | None = entry.exemplars
            else:
                waiting = self._root_offers_locked(trace_id)
            if waiting is not None:
                if len(waiting) < MAX_EXEMPLARS_PER_TRACE:
                    waiting.append(apply)
                else:
                    self.exemplars["overflow"] += 1
                return
            kept = self._memory.is_kept(trace_id)
            self.exemplars["applied" if kept else "discarded"] += 1
        if kept:
            self._apply_exemplars([apply])

    def wants(self, trace_id: int) -> bool:
        """Exemplar gate: False when ``trace_id`` is known dropped, so that no exemplar is built
        for it (counted as discarded, as its offer would be). Lock-free, like :meth:`state`."""
        if trace_id in self._pending or trace_id in self._open:
            return True
        if not self._memory.dropped(trace_id):
            return True  # kept, or not known: the offer decides
        with self._lock:
            self.exemplars["discarded"] += 1
        return False

    def state(self, trace_id: int) -> int:
        """PENDING, KEPT, DROPPED or UNKNOWN; lock-free (decisions are remembered first).

        A trace promoted by the tick (running past the slow threshold) is KEPT already.
        """
        entry = self._pending.get(trace_id)
        if entry is not None:
            return PENDING if entry.promoted is None else KEPT
        memory = self._memory
        if memory.is_kept(trace_id):
            return KEPT
        if memory.dropped(trace_id):
            return DROPPED
        # A running request root is undecided unless a child decided its trace (above).
        return PENDING if trace_id in self._open else UNKNOWN
