"""The tail sampler's general path: every SDK span, buffered per trace until its trace is decided.

A trace is decided:

- at once when an ended span matches a certain rule (error, server 5xx, slow span, attribute rule,
  ``keep_if``): the trace is kept with weight 1;
- when the local root ends (its parent is absent or remote) and its local children have ended, or
  a short grace after the root for children that outlive it (:meth:`TraceBuffer.sweep_locked`):
  per-route slowness, then the consistent baseline, else dropped;
- by the tick: a trace whose root runs past the slow threshold is promoted (certain to be kept,
  decided at its end), and an abandoned trace is decided at its timeout;
- by the caps (traces, spans per trace, estimated bytes): the oldest trace is *decided*, never
  silently discarded. Errors were kept the moment they ended, so a capped trace holds none.

A span of a trace already decided follows its decision (the late path); a late error in a dropped
trace is exported anyway, flagged ``obskit.sampling.late``. The lock covers only the buffer and
the ledger: rules (including the user's predicate) run before it is taken, exports and callbacks
(:class:`~obskit.tracing.dispatch.Dispatch`) after it is released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span

from obskit import _guard
from obskit.tracing.decisions import Ledger
from obskit.tracing.dispatch import Decided, Dispatch
from obskit.tracing.pending import ATTRIBUTE_BYTES, EVENT_BYTES, SPAN_BASE_BYTES, PendingTrace
from obskit.tracing.policies import RULE_SLOW, SpanRule, Verdict, lane_of
from obskit.tracing.ticker import Ticker
from obskit.tracing.verdicts import LATE_SPAN, OVERFLOW, SLOW_TICK, SPAN_END, TIMEOUT, VerdictMaker

__all__ = ["Caps", "Shared", "TraceBuffer"]

# When a cap is hit, decide the oldest traces down to this share of the byte cap, so that a
# steady flood decides in batches rather than once per span.
LOW_WATER = 0.9


@dataclass(frozen=True)
class Caps:
    """The buffer's bounds and clocks, fixed at configuration."""

    max_traces: int
    max_spans: int
    max_bytes: int
    timeout_ns: int
    grace_ns: int

    @property
    def low_water(self) -> int:
        """Where deciding the oldest traces stops once the byte cap was passed."""
        return int(self.max_bytes * LOW_WATER)


@dataclass(frozen=True)
class Shared:
    """What every part of one sampler works with: one lock over all their state, one ledger,
    one way to decide, one dispatch for after the lock, the tick (None: no background tick)."""

    lock: threading.RLock
    ledger: Ledger
    verdicts: VerdictMaker
    match: SpanRule
    dispatch: Dispatch
    ticker: Ticker | None
    caps: Caps
    clock: Callable[[], int]


class TraceBuffer:
    """Undecided traces by trace id, their spans and byte estimate; every decision of theirs."""

    def __init__(self, shared: Shared) -> None:
        self._lock = shared.lock
        self._ledger = ledger = shared.ledger
        self._memory = ledger.memory
        self._verdicts = verdicts = shared.verdicts
        self._root = verdicts.root
        self._match = shared.match
        self._dispatch = dispatch = shared.dispatch
        self._listeners = dispatch.listeners
        self._ticker = shared.ticker  # started with the first trace
        self._caps = caps = shared.caps
        self._max_traces, self._max_spans = caps.max_traces, caps.max_spans
        self._max_bytes = caps.max_bytes
        self._clock = shared.clock
        # A plain dict keeps insertion order (oldest first) and is cheaper to change than an
        # OrderedDict; the oldest are only looked for when a cap is hit or the tick runs.
        self.pending: dict[int, PendingTrace] = {}
        # Requests' running roots with no buffer (RequestRoots.open, which sets it): a span that
        # opens a buffer for such a trace joins its root to it.
        self.running: dict[int, Any] = {}
        self.bytes = 0
        self.closed = False

    def clear(self) -> None:
        """Forget every trace, in place (a forked child: the parent's are the parent's)."""
        self.pending.clear()
        self.bytes = 0
        self.closed = False

    # --- the hot path ---------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Count the span as started in its trace; a local root opens the trace's buffer."""
        try:
            context = span._context
            if context is None:
                return
            trace_id = context[0]
            entry = self.pending.get(trace_id)
            if entry is not None:
                # The common case takes no lock: bytearray.append is atomic under the GIL, and a
                # start counted on a trace being decided at this moment is simply never read.
                entry.started.append(1)
                return
            parent = span._parent
            # A span without a parent has a fresh trace id: nothing can be remembered for it.
            if parent is not None and self._memory.knows(trace_id):
                return  # decided: this span follows the decision when it ends
            with self._lock:
                pending = self.pending
                entry = pending.get(trace_id)
                if entry is None:
                    if self.closed or (parent is not None and self._memory.knows(trace_id)):
                        return
                    start = span._start_time or self._clock()
                    entry = PendingTrace(start, context[4])  # [4]: trace_state
                    pending[trace_id] = entry
                    root = self.running.get(trace_id)
                    if root is not None:
                        # A request's root runs in this trace (this is its child, or another
                        # request's root with the same remote parent): from now on its end
                        # must look for a decision made without it.
                        root._joined = True
                    if parent is None or parent[2]:  # [2]: is_remote, without the property call
                        entry.root_start = start
                    elif root is not None:  # a request's first child: the root runs already
                        entry.root_start = root._start_time
                    over = len(pending) > self._max_traces
                    ticker = self._ticker
                    starting = ticker is not None and not ticker.started
                else:
                    over = starting = False
                entry.started.append(1)
            if starting:
                self._ticker.start()  # type: ignore[union-attr]  # (not None: see above)
            if over:
                self.relieve()
        except Exception as exc:  # a span processor must never raise into user code
            _guard.report("tracing.on_start", exc)

    def on_end(self, span: ReadableSpan) -> None:
        """Buffer the span; decide its trace if a rule matched or its local root ended."""
        # (One method on purpose: every span passes here, and a call more costs ~10% of it.)
        # The SDK's bounded containers keep their items in ``_dict`` / ``_dq``: reading those
        # spares a Python-level __len__ / __iter__ (one takes a lock) on every span; a request's
        # ServerSpan has a plain dict and sequence.
        try:
            attrs = span._attributes
            try:
                attrs = attrs._dict  # type: ignore[union-attr]
            except AttributeError:
                pass
            events = span._events
            try:
                events = events._dq  # type: ignore[attr-defined]
            except AttributeError:
                pass
            try:
                rule = self._match(span, attrs, events)
            except Exception as exc:  # the user's predicate failed: count it, treat as no match
                _guard.report("tracing.keep_if", exc)
                rule = None
            context = span._context
            if context is None:
                return
            trace_id = context[0]
            parent = span._parent
            root_verdict = None
            if rule is None and (parent is None or parent[2]):  # [2]: is_remote
                root_verdict = self._root(trace_id, context[4], span)
            size = SPAN_BASE_BYTES
            if attrs:
                size += ATTRIBUTE_BYTES * len(attrs)
            if events:
                size += EVENT_BYTES * len(events)
            decided: Decided | None = None
            overflow = False
            with self._lock:
                pending = self.pending
                entry = pending.get(trace_id)
                if entry is None:
                    if self._memory.knows(trace_id):
                        decided = self._late_locked(trace_id, span, rule)
                    else:  # a trace seen first at a span's end (no local start observed)
                        entry = PendingTrace(span._start_time or self._clock(), context.trace_state)
                        entry.started.append(1)
                        pending[trace_id] = entry
                        overflow = len(pending) > self._max_traces
                if entry is not None:
                    spans = entry.spans
                    spans.append(span)
                    entry.nbytes += size
                    self.bytes += size
                    if rule is not None:
                        verdict = self._verdicts.certain(rule, SPAN_END, entry.trace_state)
                        decided = self.decide_locked(trace_id, entry, verdict)
                    elif root_verdict is not None:
                        if entry.promoted is not None:  # ran past the slow threshold
                            root_verdict = entry.promoted
                        entry.root_end = span._end_time
                        if len(entry.started) <= len(spans):
                            decided = self.decide_locked(trace_id, entry, root_verdict)
                        else:  # children still running: wait for them (or the grace)
                            entry.root_verdict = root_verdict
                    elif entry.root_verdict is not None and len(entry.started) <= len(spans):
                        decided = self.decide_locked(trace_id, entry, entry.root_verdict)
                    elif len(spans) >= self._max_spans:
                        self._ledger.eviction("spans")
                        verdict = self.forced(trace_id, entry, OVERFLOW, self._clock())
                        decided = self.decide_locked(trace_id, entry, verdict)
                    if self.bytes > self._max_bytes:
                        overflow = True
            # A plain drop with nothing waiting on it needs no second step.
            if decided is not None and (
                decided[2].keep or decided[1] is None or decided[1].exemplars or self._listeners
            ):
                self._dispatch.finish((decided,))
            if overflow:
                self.relieve()
        except Exception as exc:  # a span processor must never raise into user code
            _guard.report("tracing.on_end", exc)

    # --- decisions (under the lock) ------------------------------------------------------

    def forced(self, trace_id: int, entry: PendingTrace, trigger: str, now: int) -> Verdict:
        """A decision forced before the trace finished (cap, timeout, flush)."""
        return self._verdicts.forced(
            trace_id,
            entry.trace_state,
            entry.root_start,
            entry.root_verdict or entry.promoted,
            trigger,
            now,
        )

    def decide_locked(self, trace_id: int, entry: PendingTrace, verdict: Verdict) -> Decided:
        """Decide a buffered trace: recorded, then its buffer let go (its spans are returned)."""
        exemplars = entry.exemplars
        self._ledger.record_decision(
            trace_id, verdict, len(entry.spans), len(exemplars) if exemplars else 0
        )
        del self.pending[trace_id]
        self.bytes -= entry.nbytes
        return trace_id, entry, verdict, entry.spans

    def _late_locked(self, trace_id: int, span: ReadableSpan, rule: str | None) -> Decided | None:
        verdict = self._memory.kept(trace_id)
        if verdict is not None:
            self._ledger.late_span("kept")
            if rule is not None and lane_of(rule) < verdict.lane:
                # A trace kept for a lesser reason shows a better one (an error in a trace kept
                # as slow or by the baseline): this span and the rest of the trace carry that
                # rule and wait in its lane. Still one decision for the trace: not counted again.
                context = span.context
                verdict = self._verdicts.certain(rule, SPAN_END, context and context.trace_state)
                self._memory.remember(trace_id, verdict)
            return trace_id, None, verdict, [span]
        if rule is None:
            self._ledger.late_span("dropped")
            return None
        # A late error (or other certain rule) in a dropped trace: export it, flagged, and keep
        # the rest of the trace from now on. Its earlier spans are gone; the flag says so. The
        # trace's one decision (the drop) was counted; the rescue is counted as a late span.
        self._ledger.late_span("rescued")
        verdict = self._verdicts.certain(rule, LATE_SPAN, None)
        self._memory.remember(trace_id, verdict)
        return trace_id, None, verdict, [span]

    def relieve(self) -> None:
        """Decide the oldest traces until the buffer is back under its caps."""
        decided: list[Decided] = []
        now = self._clock()
        with self._lock:
            pending = self.pending
            target = self._caps.low_water if self.bytes > self._max_bytes else self._max_bytes
            excess_traces = len(pending) - self._max_traces
            excess_bytes = self.bytes - target
            victims: list[tuple[int, PendingTrace]] = []
            for item in pending.items():  # oldest first, one pass over the dict
                if excess_traces <= 0 and excess_bytes <= 0:
                    break
                victims.append(item)
                excess_traces -= 1
                excess_bytes -= item[1].nbytes
            for trace_id, entry in victims:
                self._ledger.eviction("traces" if len(pending) > self._max_traces else "bytes")
                verdict = self.forced(trace_id, entry, OVERFLOW, now)
                decided.append(self.decide_locked(trace_id, entry, verdict))
        self._dispatch.finish(decided)

    # --- the tick, flush, stats (under the lock) -------------------------------------------

    def sweep_locked(self, now: int, window: int, promoted: list[int]) -> list[Decided]:
        """The tick's part for buffered traces: decide those whose children's grace or whose
        timeout is over; promote (append to ``promoted``) those whose root runs past slow."""
        caps = self._caps
        slow_ns = self._verdicts.slow_ns
        due: list[tuple[int, PendingTrace, Verdict]] = []
        for trace_id, entry in self.pending.items():
            if entry.created > now - window:
                break  # oldest first: nothing later can be due yet
            if entry.root_verdict is not None:
                if entry.root_end is not None and now - entry.root_end >= caps.grace_ns:
                    due.append((trace_id, entry, entry.root_verdict))
                    continue
            elif (
                entry.promoted is None
                and entry.root_start is not None
                and now - entry.root_start >= slow_ns
            ):
                entry.promoted = self._verdicts.certain(RULE_SLOW, SLOW_TICK, entry.trace_state)
                promoted.append(trace_id)
            if now - entry.created >= caps.timeout_ns:
                due.append((trace_id, entry, self.forced(trace_id, entry, TIMEOUT, now)))
        return [self.decide_locked(trace_id, entry, verdict) for trace_id, entry, verdict in due]

    def decide_all_locked(self, trigger: str, now: int) -> list[Decided]:
        """Flush and shutdown: decide every buffered trace."""
        return [
            self.decide_locked(trace_id, entry, self.forced(trace_id, entry, trigger, now))
            for trace_id, entry in list(self.pending.items())
        ]

    def spans_locked(self) -> int:
        """How many spans are buffered."""
        return sum(len(entry.spans) for entry in self.pending.values())
