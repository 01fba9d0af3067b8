"""The tail sampler: buffer each trace at its local root, decide once, export what is kept.

A span processor made of parts that each own their state, all guarded by one lock:

- :class:`~obskit.tracing.buffer.TraceBuffer`, the general path: SDK spans buffered per trace
  until a rule, the root's end, the tick or a cap decides the trace;
- :class:`~obskit.tracing.request_roots.RequestRoots`, the fast path for a request's lightweight
  SERVER span, which opens no buffer unless one is needed;
- :class:`~obskit.tracing.decisions.Ledger`, where every decision is recorded and counted once,
  with the memory that lets late spans follow their trace;
- :class:`~obskit.tracing.views.TraceViews`, what others read (the exemplar gate, the log
  buffer's state);
- :class:`~obskit.tracing.dispatch.Dispatch`, what is done after the lock: export, exemplars,
  listeners.

The sampler wires them, hands each hot-path entry point to the part that serves it (bound
directly: no call more per span), and runs the tick, flush and shutdown across all of them.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from obskit import _guard, _locks
from obskit.tracing import policies
from obskit.tracing.buffer import Caps, Shared, TraceBuffer
from obskit.tracing.decisions import Ledger
from obskit.tracing.dispatch import Dispatch
from obskit.tracing.export import KeptSink
from obskit.tracing.request_roots import RequestRoots
from obskit.tracing.ticker import Ticker
from obskit.tracing.verdicts import (
    ADJUSTED_COUNT,
    FLUSH,
    LATE,
    RULE,
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


class TailSampler(SpanProcessor):
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
        slow_ns = int(slow_threshold_ms * 1e6)
        caps = Caps(
            max_traces,
            max_spans_per_trace,
            max_buffer_bytes,
            timeout_ns=int(trace_timeout_s * 1e9),
            grace_ns=int(min(child_grace_s, trace_timeout_s) * 1e9),
        )
        # One tick serves all three clocks (slow promotion, children's grace, timeout).
        self._window = min(slow_ns, caps.grace_ns, caps.timeout_ns)
        tick_s = tick_s if tick_s is not None else min(0.5, max(0.02, self._window / 4e9))
        self._ticker = Ticker(self.sweep, tick_s, "obskit-tail-sampler")
        background_ticker = self._ticker if background else None
        self._clock = clock
        self._lock = _locks.rlock()
        verdicts = VerdictMaker(baseline_ratio, slow_ns, slow_per_route)
        match = policies.span_rule(slow_ns, keep_rules, keep_if)
        self._ledger = ledger = Ledger(max_traces)
        self._dispatch = dispatch = Dispatch(sink)
        shared = Shared(
            self._lock, ledger, verdicts, match, dispatch, background_ticker, caps, clock
        )
        self._buffer = buffer = TraceBuffer(shared)
        self._roots = roots = RequestRoots(shared, buffer)
        views = TraceViews(shared, buffer, roots)
        # Callbacks told of every decision (trace id, kept), outside the lock: the log buffer.
        self.listeners: list[Callable[[int, bool], None]] = dispatch.listeners
        # The hot paths, bound to the part that serves them (shutdown shadows some).
        self.on_start = buffer.on_start  # type: ignore[method-assign]
        self.on_end = buffer.on_end  # type: ignore[method-assign]
        self.open_server_span: Callable[[Any], None] = roots.open_server_span
        self.end_server_span: Callable[[Any], None] = roots.end_server_span
        self.forget_server_span: Callable[[Any], bool] = roots.forget_server_span
        self.offer: Callable[[int, Callable[[], None]], None] = views.offer
        self.wants: Callable[[int], bool] = views.wants
        self.state: Callable[[int], int] = views.state
        ref = weakref.WeakMethod(self._after_fork_in_child)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _call(ref))

    def _after_fork_in_child(self) -> None:
        # The parent's traces are the parent's to decide: the child starts empty, each part in
        # place (the lock was re-made by obskit._locks: one may have been held at fork time),
        # with a tick thread of its own.
        self._buffer.clear()
        self._roots.clear()
        self._ledger.clear()
        self._ticker.after_fork_in_child()
        self._dispatch.sink.after_fork_in_child()

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
        candidates = self._roots.due(now)  # lock-free: from a copy of the running roots
        promoted: list[int] = []
        with self._lock:
            decided = self._buffer.sweep_locked(now, self._window, promoted)
            settled = self._roots.sweep_locked(now, candidates, promoted)
        dispatch = self._dispatch
        dispatch.finish(decided)
        dispatch.settle(settled)
        for trace_id in promoted:  # certain to be kept: its held debug lines can be written
            dispatch.tell(trace_id, True)
        return len(decided) + len(settled) + len(promoted)

    def _decide_all(self, trigger: str, wait: float) -> int:
        """Decide every pending trace; 0, or the spans left undecided because the buffer's lock
        was not free within ``wait`` seconds (then nothing is decided)."""
        now = self._clock()
        buffer = self._buffer
        if not self._lock.acquire(timeout=max(0.0, wait)):
            try:  # read without the lock: its holder may change the buffer meanwhile
                return sum(len(entry.spans) for entry in list(buffer.pending.values()))
            except RuntimeError:
                return len(buffer.pending)
        try:
            decided = buffer.decide_all_locked(trigger, now)
            settled = self._roots.decide_all_locked(trigger, now)
        finally:
            self._lock.release()
        self._dispatch.finish(decided)
        self._dispatch.settle(settled)
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
        flushed = self._dispatch.sink.force_flush(max(0.0, deadline - time.monotonic()))
        return flushed and not undecided

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the tick, decide every pending trace and flush, all within ``timeout`` seconds.

        Deciding waits half the time at most for the buffer's lock, so that what is already
        queued still goes out; spans it could not decide are counted as lost with the rest.
        """
        deadline = time.monotonic() + timeout
        if self._buffer.closed:
            return
        self._ticker.stop(0.0)
        undecided = 0
        try:
            undecided = self._decide_all(FLUSH, timeout / 2)
        except Exception as exc:
            _guard.report("tracing.shutdown", exc)
        self._buffer.closed = True  # (read under the lock by on_start; a plain store is enough)
        # Later spans are ignored: shadowing the entry points spares the hot path a flag test.
        self.on_end = self.end_server_span = self.open_server_span = _ignore  # type: ignore[method-assign]
        self._dispatch.sink.shutdown(max(0.0, deadline - time.monotonic()), undecided)
        self._ticker.stop(max(0.0, min(0.5, deadline - time.monotonic())))

    def buffered(self) -> tuple[int, int, int]:
        """Undecided traces, their spans and their estimated bytes."""
        buffer = self._buffer
        with self._lock:
            return len(buffer.pending), buffer.spans_locked(), buffer.bytes

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of every counter (for the self-metrics collector)."""
        buffer = self._buffer
        with self._lock:
            return {
                "traces": len(buffer.pending) + len(self._roots.open),
                "spans": buffer.spans_locked(),
                "bytes": buffer.bytes,
                **self._ledger.counts(),
            }


def _ignore(span: ReadableSpan) -> None:
    return None


def _call(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()
