"""What the tail sampler tells others about a trace while it runs: the exemplar gate and the state
the log buffer asks about.

RED offers exemplars here (:mod:`obskit._exemplars`): an exemplar waits on its trace and is
applied only if the trace is kept; ``wants`` spares building one for a trace already dropped.
``state`` tells the debug-log buffer whether to hold a line, write it or discard it. Both read the
sampler's buffer, running roots and decision memory, the exemplar side under its lock, the state
lock-free (decisions are remembered before buffers are released).
"""

from __future__ import annotations

from collections.abc import Callable

from obskit.tracing.buffer import Shared, TraceBuffer
from obskit.tracing.dispatch import apply_exemplars
from obskit.tracing.pending import MAX_EXEMPLARS_PER_TRACE
from obskit.tracing.request_roots import RequestRoots

__all__ = ["DROPPED", "KEPT", "PENDING", "UNKNOWN", "TraceViews"]

# What a trace id is to the sampler right now (``TraceViews.state``).
UNKNOWN, PENDING, KEPT, DROPPED = 0, 1, 2, 3


class TraceViews:
    """Reads the sampler's traces for others: the exemplar gate and the log buffer's state."""

    def __init__(self, shared: Shared, buffer: TraceBuffer, roots: RequestRoots) -> None:
        self._pending, self._open = buffer.pending, roots.open
        self._offers_locked = roots.offers_locked
        self._lock, self._ledger, self._memory = shared.lock, shared.ledger, shared.ledger.memory

    def offer(self, trace_id: int, apply: Callable[[], None]) -> None:
        """Exemplar gate: call ``apply`` when the trace is kept (now, or at its decision)."""
        with self._lock:
            entry = self._pending.get(trace_id)
            if entry is not None:
                if entry.exemplars is None:
                    entry.exemplars = []
                waiting: list[Callable[[], None]] | None = entry.exemplars
            else:
                waiting = self._offers_locked(trace_id)
            if waiting is not None:
                if len(waiting) < MAX_EXEMPLARS_PER_TRACE:
                    waiting.append(apply)
                else:
                    self._ledger.exemplars["overflow"] += 1
                return
            kept = self._memory.is_kept(trace_id)
            self._ledger.exemplars_settled(kept, 1)
        if kept:
            apply_exemplars([apply])

    def wants(self, trace_id: int) -> bool:
        """Exemplar gate: False when ``trace_id`` is known dropped, so that no exemplar is built
        for it (counted as discarded, as its offer would be). Lock-free, like :meth:`state`."""
        if trace_id in self._pending or trace_id in self._open:
            return True
        if not self._memory.dropped(trace_id):
            return True  # kept, or not known: the offer decides
        with self._lock:
            self._ledger.exemplars_settled(False, 1)
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
