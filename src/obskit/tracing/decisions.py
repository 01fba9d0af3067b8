"""What the tail sampler decided: the memory late spans follow, and the one ledger of counts.

:class:`Ledger` is where every decision is recorded (:meth:`Ledger.record_decision`), with what
became of the spans and exemplars it covered, whichever path decided it; the self-metrics read its
counts. Not thread-safe on its own: the sampler calls it under its buffer lock.

Decision memory:
Kept traces are remembered with their verdict (rule and weight, which late spans must carry) in
an LRU. Dropped traces only need one bit, so they live in a compact two-generation set of trace
ids: when the young generation fills, it becomes the old one and the previous old one is
forgotten. Both are bounded; forgetting a trace only means that a very late span of it is treated
as a new trace (buffered, then decided on its own).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from obskit.tracing.policies import Verdict

__all__ = ["DecisionMemory", "Ledger"]


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

    def remember(self, trace_id: int, verdict: Verdict, first: bool = False) -> bool:
        """Record a decision (a keep replaces an earlier drop: a late error rescued the trace).

        With ``first``, only if none is remembered for the trace; returns whether it was recorded.
        """
        if first and (trace_id in self._kept or trace_id in self._young or trace_id in self._old):
            return False
        if verdict.keep:
            # Kept first, then no longer dropped: a lock-free reader never sees neither.
            self._kept[trace_id] = verdict
            self._kept.move_to_end(trace_id)
            self._young.discard(trace_id)
            self._old.discard(trace_id)
            if len(self._kept) > self._kept_capacity:
                self._kept.popitem(last=False)
            return True
        young = self._young
        young.add(trace_id)
        if len(young) >= self._generation_size:
            self._old = young
            self._young = set()
        return True

    def sizes(self) -> tuple[int, int]:
        """How many kept and dropped traces are remembered."""
        return len(self._kept), len(self._young) + len(self._old)

    def clear(self) -> None:
        """Forget everything (a forked child starts with its own traces)."""
        self._kept.clear()
        self._young = set()
        self._old = set()


class Ledger:
    """Every decision, and what became of the spans and exemplars it covered (one place each)."""

    def __init__(self, max_traces: int) -> None:
        self.memory = DecisionMemory(
            kept_capacity=max(1_000, max_traces),
            dropped_capacity=max(10_000, 4 * max_traces),
        )
        # Keyed by the verdict itself (the common ones are shared constants): no key to build.
        self.decisions: dict[Verdict, int] = {}
        self.evictions: dict[str, int] = {}
        self.late: dict[str, int] = {}
        self.exemplars: dict[str, int] = {"applied": 0, "discarded": 0, "overflow": 0}
        self.spans_out: dict[str, int] = {"kept": 0, "dropped": 0}

    def record_decision(
        self, trace_id: int, verdict: Verdict, spans: int, exemplars: int, first: bool = False
    ) -> bool:
        """A trace's one decision, covering ``spans`` spans and ``exemplars`` waiting exemplars.

        Remembered first: whoever then lets go of the trace's buffer leaves no moment in which a
        lock-free reader finds neither. (Spans that end later are counted by :meth:`late_span`.)
        With ``first`` nothing is recorded, and False returned, when the trace was decided
        already (another request's root of the same upstream trace ended first).
        """
        if not self.memory.remember(trace_id, verdict, first):
            return False
        decisions = self.decisions
        decisions[verdict] = decisions.get(verdict, 0) + 1
        if spans:
            self.spans_out["kept" if verdict.keep else "dropped"] += spans
        if exemplars:
            self.exemplars["applied" if verdict.keep else "discarded"] += exemplars
        return True

    def late_span(self, outcome: str) -> None:
        """A span that ended after its trace's decision: followed it ("kept", "dropped"), or
        "rescued" a dropped trace (a late error; not a second decision)."""
        self.late[outcome] = self.late.get(outcome, 0) + 1
        self.spans_out["dropped" if outcome == "dropped" else "kept"] += 1

    def exemplars_settled(self, keep: bool, count: int) -> None:
        """``count`` exemplars met a decision already made (applied if kept)."""
        self.exemplars["applied" if keep else "discarded"] += count

    def eviction(self, reason: str) -> None:
        """A cap ("traces", "bytes", "spans") decided a trace early."""
        self.evictions[reason] = self.evictions.get(reason, 0) + 1

    def counts(self) -> dict[str, Any]:
        """A copy of every count (call under the lock that guards the ledger)."""
        decisions: dict[tuple[bool, str, str], int] = {}
        for verdict, n in self.decisions.items():
            key = (verdict.keep, verdict.rule, verdict.trigger)
            decisions[key] = decisions.get(key, 0) + n
        kept, dropped = self.memory.sizes()
        return {
            "decisions": decisions,
            "evictions": dict(self.evictions),
            "late": dict(self.late),
            "exemplars": dict(self.exemplars),
            "spans_out": dict(self.spans_out),
            "memory": {"kept": kept, "dropped": dropped},
        }

    def clear(self) -> None:
        """Forget and zero everything, in place (a forked child starts with its own traces)."""
        self.memory.clear()
        self.decisions.clear()
        self.evictions.clear()
        self.late.clear()
        for counts in (self.exemplars, self.spans_out):
            for key in counts:
                counts[key] = 0
