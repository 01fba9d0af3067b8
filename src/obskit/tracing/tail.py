"""The tail sampler: buffer each trace at its local root, decide once, export what is kept.

A span processor. Spans are held per trace id until the trace is decided:

- at once when an ended span matches a certain rule (error, server 5xx, slow span, attribute rule,
  ``keep_if``): the trace is kept with weight 1;
- when the local root ends (its parent is absent or remote) and its local children have ended, or
  a short grace after the root for children that outlive it: per-route slowness, then the
  consistent baseline, else dropped;
- by a background tick: a trace whose root runs past the slow threshold is promoted (kept), and
  an abandoned trace is decided at its timeout;
- by the caps (traces, spans per trace, estimated bytes): the oldest trace is *decided*, never
  silently discarded. Errors were kept the moment they ended, so a capped trace holds none.

Decisions are remembered (:class:`DecisionMemory`) so that late spans follow their trace; a late
error in a dropped trace is exported anyway, flagged ``obskit.sampling.late``. The lock covers
only the buffer and the memory: rules (including the user's predicate) run before it is taken,
exports and callbacks after it is released.

A request's lightweight SERVER span takes a shorter path that opens no buffer unless one is
needed (:mod:`obskit.tracing.request_roots`).
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from obskit import _guard, _locks
from obskit.tracing import policies
from obskit.tracing.decisions import DecisionMemory
from obskit.tracing.export import KeptSink
from obskit.tracing.pending import (
    ATTRIBUTE_BYTES,
    EVENT_BYTES,
    SPAN_BASE_BYTES,
    PendingTrace,
)
from obskit.tracing.policies import MASK56, RULE_SLOW, Verdict, lane_of
from obskit.tracing.request_roots import RequestRoots
from obskit.tracing.ticker import Ticker
from obskit.tracing.verdicts import (
    ADJUSTED_COUNT,
    FLUSH,
    LATE,
    LATE_SPAN,
    OVERFLOW,
    RULE,
    SLOW_TICK,
    SPAN_END,
    TIMEOUT,
    TRIGGER,
    VerdictMaker,
    annotate,
)
from obskit.tracing.views import DROPPED, KEPT, PENDING, UNKNOWN, TraceViews

__all__ = [
    "ADJUSTED_COUNT",
    "DROPPED",
    "KEPT",
    "LATE",
    "PENDING",
    "RULE",
    "TRIGGER",
    "UNKNOWN",
    "TailSampler",
    "annotate",
]

# When a cap is hit, decide the oldest traces down to this share of the byte cap, so that a
# steady flood decides in batches rather than once per span.
LOW_WATER = 0.9


Decided = tuple[int, PendingTrace | None, Verdict, "list[ReadableSpan]"]


class TailSampler(RequestRoots, TraceViews, SpanProcessor):
    """Buffers spans per trace at the local root and exports the traces worth keeping."""

    def __init__(
        self,
        sink: KeptSink,
        *,
        baseline_ratio: float = 0.01,
        slow_threshold_ms: float = 1000.0,
        slow_per_route: bool = False,
        keep_rules: tuple[tuple[str, str], ...] = (),
        keep_if: Callable[[ReadableSpan], Any] | None = None,
        trace_timeout_s: float = 30.0,
        max_traces: int = 10_000,
        max_spans_per_trace: int = 1_000,
        max_buffer_bytes: int = 64 * 1024 * 1024,
        child_grace_s: float = 2.0,
        clock: Callable[[], int] = time.time_ns,
        tick_s: float | None = None,
        background: bool = True,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._slow_ns = int(slow_threshold_ms * 1e6)
        self._timeout_ns = int(trace_timeout_s * 1e9)
        self._grace_ns = int(min(child_grace_s, trace_timeout_s) * 1e9)
        verdicts = VerdictMaker(baseline_ratio, self._slow_ns, slow_per_route)
        self._verdicts = verdicts
        # Copied for the hot path: the common root's verdict is one of two constants.
        self._baseline_threshold = verdicts.baseline_threshold
        self._root_keep, self._root_drop = verdicts.root_keep, verdicts.root_drop
        self._routes = verdicts.routes
        self._match = policies.span_rule(self._slow_ns, keep_rules, keep_if)
        self._max_traces = max_traces
        self._max_spans = max_spans_per_trace
        self._max_bytes = max_buffer_bytes
        self._low_water = int(max_buffer_bytes * LOW_WATER)
        # One tick serves all three clocks (slow promotion, children's grace, timeout).
        window_ns = min(self._slow_ns, self._grace_ns, self._timeout_ns)
        self._tick_s = tick_s if tick_s is not None else min(0.5, max(0.02, window_ns / 4e9))
        self._background = background
        # Callbacks told of every decision (trace id, kept), outside the lock: the log buffer.
        self.listeners: list[Callable[[int, bool], None]] = []
        self._init_state()
        ref = weakref.WeakMethod(self._after_fork_in_child)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _call(ref))

    def _init_state(self) -> None:
        self._lock = _locks.rlock()
        # A plain dict keeps insertion order (oldest first) and is cheaper to change than an
        # OrderedDict; the oldest are only looked for when a cap is hit or the tick runs.
        self._pending: dict[int, PendingTrace] = {}
        # Requests' lightweight SERVER spans still running, by trace id, that have no buffer yet
        # (most never need one): see open_server_span.
        self._open: dict[int, Any] = {}
        self._memory = DecisionMemory(
            kept_capacity=max(1_000, self._max_traces),
            dropped_capacity=max(10_000, 4 * self._max_traces),
        )
        self._bytes = 0
        self._closed = False
        # Keyed by the verdict itself (the common ones are shared constants): no key to build.
        self._decisions: dict[Verdict, int] = {}
        self.evictions: dict[str, int] = {}
        self.late: dict[str, int] = {}
        self.exemplars: dict[str, int] = {"applied": 0, "discarded": 0, "overflow": 0}
        self.spans_out: dict[str, int] = {"kept": 0, "dropped": 0}
        # The background tick, started with the first trace.
        self._ticker = Ticker(self.sweep, self._tick_s, "obskit-tail-sampler")
        self._ticking = False

    def _after_fork_in_child(self) -> None:
        # The parent's traces are the parent's to decide: the child starts empty, with new
        # locks (one may have been held at fork time) and its own thread.
        listeners = self.listeners
        self._init_state()
        self.listeners = listeners
        self._sink.after_fork_in_child()

    # --- the hot path ---------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Count the span as started in its trace; a local root opens the trace's buffer."""
        try:
            context = span._context
            if context is None:
                return
            trace_id = context[0]
            entry = self._pending.get(trace_id)
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
                entry = self._pending.get(trace_id)
                if entry is None:
                    if self._closed or (parent is not None and self._memory.knows(trace_id)):
                        return
                    start = span._start_time or self._clock()
                    entry = PendingTrace(start, context[4])  # [4]: trace_state
                    self._pending[trace_id] = entry
                    root = self._open.get(trace_id)
                    if root is not None:
                        # A request's root runs in this trace (this is its child, or another
                        # request's root with the same remote parent): from now on its end
                        # must look for a decision made without it.
                        root._joined = True
                    if parent is None or parent[2]:  # [2]: is_remote, without the property call
                        entry.root_start = start
                    elif root is not None:  # a request's first child: the root runs already
                        entry.root_start = root._start_time
                    over = len(self._pending) > self._max_traces
                    starting = self._background and not self._ticker.started
                else:
                    over = starting = False
                entry.started.append(1)
            if starting:
                self._ticker.start()
            if over:
                self._relieve()
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
                state = context[4]
                if self._routes is None and not getattr(state, "_dict", state):
                    # The common root: no upstream sampling, no per-route latency.
                    root_verdict = (
                        self._root_keep
                        if trace_id & MASK56 >= self._baseline_threshold
                        else self._root_drop
                    )
                else:
                    root_verdict = self._verdicts.root_end(trace_id, state, span)
            size = SPAN_BASE_BYTES
            if attrs:
                size += ATTRIBUTE_BYTES * len(attrs)
            if events:
                size += EVENT_BYTES * len(events)
            decided: Decided | None = None
            overflow = False
            with self._lock:
                entry = self._pending.get(trace_id)
                if entry is None:
                    if self._memory.knows(trace_id):
                        decided = self._late_locked(trace_id, span, rule)
                    else:  # a trace seen first at a span's end (no local start observed)
                        entry = PendingTrace(span._start_time or self._clock(), context.trace_state)
                        entry.started.append(1)
                        self._pending[trace_id] = entry
                        overflow = len(self._pending) > self._max_traces
                if entry is not None:
                    spans = entry.spans
                    spans.append(span)
                    entry.nbytes += size
                    self._bytes += size
                    if rule is not None:
                        verdict = self._verdicts.certain(rule, SPAN_END, entry.trace_state)
                        decided = self._decide_locked(trace_id, entry, verdict)
                    elif root_verdict is not None:
                        if entry.promoted is not None:  # ran past the slow threshold
                            root_verdict = entry.promoted
                        entry.root_end = span._end_time
                        if len(entry.started) <= len(spans):
                            decided = self._decide_locked(trace_id, entry, root_verdict)
                        else:  # children still running: wait for them (or the grace)
                            entry.root_verdict = root_verdict
                    elif entry.root_verdict is not None and len(entry.started) <= len(spans):
                        decided = self._decide_locked(trace_id, entry, entry.root_verdict)
                    elif len(spans) >= self._max_spans:
                        self._count_eviction("spans")
                        verdict = self._forced(trace_id, entry, OVERFLOW, self._clock())
                        decided = self._decide_locked(trace_id, entry, verdict)
                    if self._bytes > self._max_bytes:
                        overflow = True
            # A plain drop with nothing waiting on it needs no second step.
            if decided is not None and (
                decided[2].keep or decided[1] is None or decided[1].exemplars or self.listeners
            ):
                self._finish((decided,))
            if overflow:
                self._relieve()
        except Exception as exc:  # a span processor must never raise into user code
            _guard.report("tracing.on_end", exc)

    # --- decisions (under the lock) ------------------------------------------------------

    def _forced(self, trace_id: int, entry: PendingTrace, trigger: str, now: int) -> Verdict:
        """A decision forced before the trace finished (cap, timeout, flush)."""
        return self._verdicts.forced(
            trace_id,
            entry.trace_state,
            entry.root_start,
            entry.root_verdict or entry.promoted,
            trigger,
            now,
        )

    def _decide_locked(self, trace_id: int, entry: PendingTrace, verdict: Verdict) -> Decided:
        # Remember before removing, so a lock-free reader (``state``) never sees neither.
        self._memory.remember(trace_id, verdict)
        del self._pending[trace_id]
        self._bytes -= entry.nbytes
        self._decisions[verdict] = self._decisions.get(verdict, 0) + 1
        self.spans_out["kept" if verdict.keep else "dropped"] += len(entry.spans)
        if entry.exemplars:
            self.exemplars["applied" if verdict.keep else "discarded"] += len(entry.exemplars)
        return trace_id, entry, verdict, entry.spans

    def _late_locked(self, trace_id: int, span: ReadableSpan, rule: str | None) -> Decided | None:
        verdict = self._memory.kept(trace_id)
        if verdict is not None:
            self.late["kept"] = self.late.get("kept", 0) + 1
            self.spans_out["kept"] += 1
            if rule is not None and lane_of(rule) < verdict.lane:
                # A trace kept for a lesser reason shows a better one (an error in a trace kept
                # as slow or by the baseline): this span and the rest of the trace carry that
                # rule and wait in its lane. Still one decision for the trace: not counted again.
                context = span.context
                verdict = self._verdicts.certain(rule, SPAN_END, context and context.trace_state)
                self._memory.remember(trace_id, verdict)
            return trace_id, None, verdict, [span]
        if rule is None:
            self.late["dropped"] = self.late.get("dropped", 0) + 1
            self.spans_out["dropped"] += 1
            return None
        # A late error (or other certain rule) in a dropped trace: export it, flagged, and keep
        # the rest of the trace from now on. Its earlier spans are gone; the flag says so.
        self.late["rescued"] = self.late.get("rescued", 0) + 1
        # The trace's one decision (the drop) was counted; a rescue is counted as such above.
        verdict = self._verdicts.certain(rule, LATE_SPAN, None)
        self._memory.remember(trace_id, verdict)
        self.spans_out["kept"] += 1
        return trace_id, None, verdict, [span]

    def _count_eviction(self, reason: str) -> None:
        self.evictions[reason] = self.evictions.get(reason, 0) + 1

    def _relieve(self) -> None:
        """Decide the oldest traces until the buffer is back under its caps."""
        decided: list[Decided] = []
        now = self._clock()
        with self._lock:
            pending = self._pending
            target = self._low_water if self._bytes > self._max_bytes else self._max_bytes
            excess_traces = len(pending) - self._max_traces
            excess_bytes = self._bytes - target
            victims: list[tuple[int, PendingTrace]] = []
            for item in pending.items():  # oldest first, one pass over the dict
                if excess_traces <= 0 and excess_bytes <= 0:
                    break
                victims.append(item)
                excess_traces -= 1
                excess_bytes -= item[1].nbytes
            for trace_id, entry in victims:
                self._count_eviction("traces" if len(pending) > self._max_traces else "bytes")
                verdict = self._forced(trace_id, entry, OVERFLOW, now)
                decided.append(self._decide_locked(trace_id, entry, verdict))
        self._finish(decided)

    # --- after the lock: export, exemplars, listeners ---------------------------------------

    def _finish(self, decided: Sequence[Decided]) -> None:
        for trace_id, entry, verdict, spans in decided:
            late = entry is None
            if verdict.keep and spans:
                flag = late and verdict.trigger == LATE_SPAN
                kept = [annotate(span, verdict, flag) for span in spans]
                try:
                    self._sink.submit(kept, verdict.lane)
                except Exception as exc:
                    _guard.report("tracing.export", exc)
            if entry is None:
                continue
            if entry.exemplars and verdict.keep:
                self._apply_exemplars(entry.exemplars)
            for listener in self.listeners:
                try:
                    listener(trace_id, verdict.keep)
                except Exception as exc:
                    _guard.report("tracing.listener", exc)

    # --- the background tick ---------------------------------------------------------------

    def sweep(self, now: int | None = None) -> int:
        """Promote traces running past the slow threshold and decide overdue ones.

        A promoted trace is certain to be kept (its debug lines are written from then on), but
        its spans wait for the trace to end: an error that comes later still decides it as an
        error trace, and a burst that makes every running trace slow does not flood the export
        queue with them at once. Returns how many traces were promoted or decided.
        """
        if now is None:
            now = self._clock()
        window = min(self._slow_ns, self._grace_ns, self._timeout_ns)
        decided: list[Decided] = []
        promoted: list[int] = []
        with self._lock:
            due: list[tuple[int, PendingTrace, Verdict]] = []
            for trace_id, entry in self._pending.items():
                if entry.created > now - window:
                    break  # oldest first: nothing later can be due yet
                if entry.root_verdict is not None:
                    if entry.root_end is not None and now - entry.root_end >= self._grace_ns:
                        due.append((trace_id, entry, entry.root_verdict))
                        continue
                elif (
                    entry.promoted is None
                    and entry.root_start is not None
                    and now - entry.root_start >= self._slow_ns
                ):
                    entry.promoted = self._verdicts.certain(RULE_SLOW, SLOW_TICK, entry.trace_state)
                    promoted.append(trace_id)
                if now - entry.created >= self._timeout_ns:
                    verdict = self._forced(trace_id, entry, TIMEOUT, now)
                    due.append((trace_id, entry, verdict))
            for trace_id, entry, verdict in due:
                decided.append(self._decide_locked(trace_id, entry, verdict))
            settled = self._sweep_open_locked(now, window, promoted)
        self._finish(decided)
        for item in settled:
            self._after_open(*item)
        for trace_id in promoted:  # certain to be kept: its held debug lines can be written
            for listener in self.listeners:
                try:
                    listener(trace_id, True)
                except Exception as exc:
                    _guard.report("tracing.listener", exc)
        return len(decided) + len(settled) + len(promoted)

    def _decide_all(self, trigger: str, wait: float) -> int:
        """Decide every pending trace; 0, or the spans left undecided because the buffer's lock
        was not free within ``wait`` seconds (then nothing is decided)."""
        now = self._clock()
        if not self._lock.acquire(timeout=max(0.0, wait)):
            try:  # read without the lock: its holder may change the buffer meanwhile
                return sum(len(entry.spans) for entry in list(self._pending.values()))
            except RuntimeError:
                return len(self._pending)
        try:
            decided = []
            for trace_id, entry in list(self._pending.items()):
                verdict = self._forced(trace_id, entry, trigger, now)
                decided.append(self._decide_locked(trace_id, entry, verdict))
            settled = self._decide_all_open_locked(trigger, now)
        finally:
            self._lock.release()
        self._finish(decided)
        for item in settled:
            self._after_open(*item)
        return 0

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Decide every pending trace, then export what is queued within the timeout."""
        timeout = timeout_millis / 1000
        deadline = time.monotonic() + timeout
        undecided = 0
        try:
            # Half the time at most for the buffer's lock: what is queued goes out regardless.
            undecided = self._decide_all(FLUSH, timeout / 2)
        except Exception as exc:
            _guard.report("tracing.flush", exc)
        flushed = self._sink.force_flush(max(0.0, deadline - time.monotonic()))
        return flushed and not undecided

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the tick, decide every pending trace and flush, all within ``timeout`` seconds.

        Deciding waits half the time at most for the buffer's lock, so that what is already
        queued still goes out; spans it could not decide are counted as lost with the rest.
        """
        deadline = time.monotonic() + timeout
        if self._closed:
            return
        self._ticker.stop(0.0)
        undecided = 0
        try:
            undecided = self._decide_all(FLUSH, timeout / 2)
        except Exception as exc:
            _guard.report("tracing.shutdown", exc)
        self._closed = True  # (read under the lock by on_start; a plain store is enough)
        # Later spans are ignored: shadowing the methods spares the hot path a flag test.
        self.on_end = self.end_server_span = _ignore  # type: ignore[method-assign]
        self.open_server_span = _ignore  # type: ignore[method-assign]
        self._sink.shutdown(max(0.0, deadline - time.monotonic()), undecided)
        self._ticker.stop(max(0.0, min(0.5, deadline - time.monotonic())))

    def _decision_counts_locked(self) -> dict[tuple[bool, str, str], int]:
        counts: dict[tuple[bool, str, str], int] = {}
        for verdict, n in self._decisions.items():
            key = (verdict.keep, verdict.rule, verdict.trigger)
            counts[key] = counts.get(key, 0) + n
        return counts

    def buffered(self) -> tuple[int, int, int]:
        """Undecided traces, their spans and their estimated bytes."""
        with self._lock:
            spans = sum(len(entry.spans) for entry in self._pending.values())
            return len(self._pending), spans, self._bytes

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of every counter (for the self-metrics collector)."""
        with self._lock:
            kept, dropped = self._memory.sizes()
            return {
                "traces": len(self._pending) + len(self._open),
                "spans": sum(len(entry.spans) for entry in self._pending.values()),
                "bytes": self._bytes,
                "decisions": self._decision_counts_locked(),
                "evictions": dict(self.evictions),
                "late": dict(self.late),
                "exemplars": dict(self.exemplars),
                "spans_out": dict(self.spans_out),
                "memory": {"kept": kept, "dropped": dropped},
            }


def _ignore(span: ReadableSpan) -> None:
    return None


def _call(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()
