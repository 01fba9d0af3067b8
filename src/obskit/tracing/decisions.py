"""Decision memory: what was decided for recent traces, so late spans follow their trace.

Kept traces are remembered with their verdict (rule and weight, which late spans must carry) in
an LRU. Dropped traces only need one bit, so they live in a compact two-generation set of trace
ids: when the young generation fills, it becomes the old one and the previous old one is
forgotten. Both are bounded; forgetting a trace only means that a very late span of it is treated
as a new trace (buffered, then decided on its own).

Not thread-safe on its own: the tail sampler calls it under its buffer lock.
"""

from __future__ import annotations

from collections import OrderedDict

from obskit.tracing.policies import Verdict

__all__ = ["DecisionMemory"]


class DecisionMemory:
    """A bounded LRU of kept verdicts plus a bounded set of dropped trace ids."""

    def __init__(self, kept_capacity: int, dropped_capacity: int) -> None:
        self._kept: OrderedDict[int, Verdict] = OrderedDict()
        self._kept_capacity = max(1, kept_capacity)
        self._young: set[int] = set()
        self._old: set[int] = set()
        # Each generation holds half, so the two together never exceed the capacity.
        self._generation_size = max(1, dropped_capacity // 2)

    def kept(self, trace_id: int) -> Verdict | None:
        """The verdict of a remembered kept trace (refreshing its place in the LRU)."""
        verdict = self._kept.get(trace_id)
        if verdict is not None:
            self._kept.move_to_end(trace_id)
        return verdict

    def is_kept(self, trace_id: int) -> bool:
        """Whether ``trace_id`` was kept recently (without touching the LRU order)."""
        return trace_id in self._kept

    def dropped(self, trace_id: int) -> bool:
        """Whether ``trace_id`` was dropped recently."""
        return trace_id in self._young or trace_id in self._old

    def knows(self, trace_id: int) -> bool:
        """Whether any decision is remembered for ``trace_id``."""
        return trace_id in self._kept or trace_id in self._young or trace_id in self._old

    def remember(self, trace_id: int, verdict: Verdict) -> None:
        """Record a decision (a keep replaces an earlier drop: a late error rescued the trace)."""
        if verdict.keep:
            self._young.discard(trace_id)
            self._old.discard(trace_id)
            self._kept[trace_id] = verdict
            self._kept.move_to_end(trace_id)
            if len(self._kept) > self._kept_capacity:
                self._kept.popitem(last=False)
            return
        young = self._young
        young.add(trace_id)
        if len(young) >= self._generation_size:
            self._old = young
            self._young = set()

    def sizes(self) -> tuple[int, int]:
        """How many kept and dropped traces are remembered."""
        return len(self._kept), len(self._young) + len(self._old)

    def clear(self) -> None:
        """Forget everything (a forked child starts with its own traces)."""
        self._kept.clear()
        self._young = set()
        self._old = set()
