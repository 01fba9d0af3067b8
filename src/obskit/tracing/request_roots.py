"""The tail sampler's fast path for requests: a SERVER span that opens no buffer.

Most requests are a single span, ended and dropped. A request's lightweight ``ServerSpan``
(:mod:`obskit.tracing.server_span`) is therefore only noted as running, in ``_open``, one dict
store with no lock; the sampler's ``state`` reports its trace as pending, so its debug lines are
held as for any trace. When it ends with nothing else buffered, its trace is decided in one
locked step. Otherwise it joins the general path:

- a child span that starts opens the trace's buffer (with the root's start time, so a slow
  request is still promoted by the tick), and the root, when it ends, is decided with it;
- exemplars offered meanwhile wait on the span (bounded like a buffer's) and follow the decision;
- the tick keeps a root running past the slow threshold, and decides one running past the
  trace timeout (a span never ended); flush and shutdown decide running roots too. A root
  decided before it ends follows its decision when it ends (the sampler's late path).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

from obskit import _guard
from obskit.tracing.pending import PendingTrace
from obskit.tracing.policies import MASK56, RULE_SLOW, Verdict
from obskit.tracing.verdicts import SLOW_TICK, SPAN_END, TIMEOUT

if TYPE_CHECKING:
    from obskit.tracing.decisions import DecisionMemory
    from obskit.tracing.verdicts import VerdictMaker

__all__ = ["RequestRoots"]


class RequestRoots:
    """The part of :class:`~obskit.tracing.tail.TailSampler` that serves requests' root spans."""

    # The sampler's own state, shared with its general path.
    _open: dict[int, Any]
    _pending: dict[int, PendingTrace]
    _lock: threading.RLock
    _memory: DecisionMemory
    _verdicts: VerdictMaker
    _decisions: dict[Verdict, int]
    _max_traces: int
    _routes: Any
    _baseline_threshold: int
    _root_keep: Verdict
    _root_drop: Verdict
    _slow_ns: int
    _timeout_ns: int
    _background: bool
    _ticking: bool  # the tick was started (or is not wanted): no property call per request
    _ticker: Any
    _match: Callable[..., str | None]
    listeners: list[Callable[[int, bool], None]]
    exemplars: dict[str, int]
    spans_out: dict[str, int]

    if TYPE_CHECKING:  # provided by the sampler (declared here for the type checker only)

        def on_start(self, span: Any, parent_context: Any = None) -> None: ...
        def on_end(self, span: Any) -> None: ...
        def _finish(self, decided: Any) -> None: ...
        @staticmethod
        def _apply_exemplars(applies: list[Callable[[], None]]) -> None: ...

    def open_server_span(self, span: Any) -> None:
        """A request's lightweight ``ServerSpan`` starts (it has ``_offers``, a list or None).

        Most requests are one span, so such a root opens no buffer: it is only noted as running
        (``state`` says PENDING, so its debug lines are held). A buffer is made when something
        needs one (a child span starts); exemplars offered meanwhile wait on the span itself.
        """
        trace_id = span._context[0]
        parent = span._parent
        if (
            trace_id in self._open
            or trace_id in self._pending
            or len(self._open) >= self._max_traces
            or (parent is not None and self._memory.knows(trace_id))
        ):
            self.on_start(span)  # the general path
            return
        self._open[trace_id] = span  # one dict store: atomic under the GIL, no lock
        if not self._ticking:
            self._ticking = True
            if self._background:
                self._ticker.start()

    def end_server_span(self, span: Any) -> None:
        """:meth:`on_end` for a request's lightweight ``ServerSpan`` (plain containers)."""
        attrs, events = span._attributes, span._events
        context = span._context
        trace_id = context[0]
        running: Any = self._open.get(trace_id)
        if running is not span:  # registered the general way, or decided already
            self.on_end(span)
            return
        try:
            try:
                rule = self._match(span, attrs, events)
            except Exception as exc:  # the user's predicate failed: count it, treat as no match
                _guard.report("tracing.keep_if", exc)
                rule = None
            state = context[4]
            if rule is not None:
                verdict = self._verdicts.certain(rule, SPAN_END, state)
            elif self._routes is None and not getattr(state, "_dict", state):
                # The common root (no upstream sampling, no per-route latency), inline.
                keep = trace_id & MASK56 >= self._baseline_threshold
                verdict = self._root_keep if keep else self._root_drop
            else:
                verdict = self._verdicts.root_end(trace_id, state, span)
            with self._lock:
                still_open = self._open.get(trace_id) is span
                if still_open:
                    del self._open[trace_id]
                    offers, span._offers = span._offers, None
                    entry = self._pending.get(trace_id)
                    if entry is not None:
                        if offers:  # a child opened a buffer: the offers wait there now
                            entry.exemplars = (entry.exemplars or []) + offers
                            offers = None
                    elif span._joined and self._memory.knows(trace_id):
                        # A child's end already decided the trace (an error keeps it at once).
                        prior = self._memory.is_kept(trace_id)
                        if offers:
                            self.exemplars["applied" if prior else "discarded"] += len(offers)
                            if not prior:
                                offers = None
                    else:
                        prior = None
                        self._memory.remember(trace_id, verdict)
                        self._decisions[verdict] = self._decisions.get(verdict, 0) + 1
                        self.spans_out["kept" if verdict.keep else "dropped"] += 1
                        if offers:
                            self.exemplars["applied" if verdict.keep else "discarded"] += len(
                                offers
                            )
        except Exception as exc:  # a span processor must never raise into user code
            _guard.report("tracing.on_end", exc)
            return
        if not still_open:
            # Decided while the rules ran (the tick, a flush): the span follows that decision.
            self.on_end(span)
            return
        if entry is not None:
            # Children made a buffer while the root ran: decide with them, the general way.
            entry.started.append(1)
            self.on_end(span)
            return
        if prior is not None:
            # The root follows its children's decision (the late path exports it if kept).
            if offers:
                self._apply_exemplars(offers)
            self.on_end(span)
            return
        if verdict.keep:
            self._finish(((trace_id, None, verdict, [span]),))
        if offers:
            self._after_open(trace_id, verdict, offers)
            return
        for listener in self.listeners:  # (inline: the common request has no offers left)
            try:
                listener(trace_id, verdict.keep)
            except Exception as exc:
                _guard.report("tracing.listener", exc)

    def forget_server_span(self, span: Any) -> bool:
        """End a request's lone root with no decision at all: the request is excluded.

        True when the span was running alone (no buffer, not joined, not decided): it is gone,
        exemplars waiting on it are discarded and listeners (the log buffer) hear "dropped".
        False otherwise; the caller then ends it as usual.
        """
        trace_id = span._context[0]
        try:
            with self._lock:
                running: Any = self._open.get(trace_id)
                if running is not span or span._joined or trace_id in self._pending:
                    return False
                del self._open[trace_id]
                offers, span._offers = span._offers, None
                if offers:
                    self.exemplars["discarded"] += len(offers)
            span._end_time = time_ns()
        except Exception as exc:  # never raised into the request
            _guard.report("tracing.on_end", exc)
            return False
        for listener in self.listeners:
            try:
                listener(trace_id, False)
            except Exception as exc:
                _guard.report("tracing.listener", exc)
        return True

    def _root_offers_locked(self, trace_id: int) -> list[Callable[[], None]] | None:
        """Where exemplars offered for a running request with no trace buffer wait: its span."""
        root = self._open.get(trace_id)
        if root is None:
            return None
        if root._offers is None:
            root._offers = []
        offers: list[Callable[[], None]] = root._offers
        return offers

    def _decide_open_locked(
        self, trace_id: int, root: Any, verdict: Verdict
    ) -> tuple[int, Verdict, Any]:
        """Decide a running root's trace before the root ends (it follows when it does)."""
        del self._open[trace_id]
        self._memory.remember(trace_id, verdict)
        self._decisions[verdict] = self._decisions.get(verdict, 0) + 1
        offers, root._offers = root._offers, None
        if offers:
            self.exemplars["applied" if verdict.keep else "discarded"] += len(offers)
        return trace_id, verdict, offers

    def _after_open(self, trace_id: int, verdict: Verdict, offers: Any) -> None:
        if offers and verdict.keep:
            self._apply_exemplars(offers)
        for listener in self.listeners:
            try:
                listener(trace_id, verdict.keep)
            except Exception as exc:
                _guard.report("tracing.listener", exc)

    # --- flush, shutdown, stats --------------------------------------------------------------

    def _sweep_open_locked(
        self, now: int, window: int, promoted: list[int]
    ) -> list[tuple[int, Verdict, Any]]:
        """The tick's part for running roots: promote the slow ones, decide the abandoned ones.

        A root whose trace has a buffer (``_joined``) is promoted and decided with that buffer;
        it only follows when it ends. One abandoned past the timeout, whose trace was decided,
        is let go here (its decision was counted with its trace).
        """
        due: list[tuple[int, Verdict, Any]] = []
        # A copy: requests register without the lock, so the dict may grow meanwhile.
        for trace_id, root in list(self._open.items()):
            start = root._start_time
            if start > now - window:
                break  # in start order: nothing later can be due yet
            if root._joined:
                if now - start >= self._timeout_ns and trace_id not in self._pending:
                    del self._open[trace_id]
                continue
            if now - start >= self._slow_ns:
                self._promote_open_locked(trace_id, root)
                promoted.append(trace_id)
            elif now - start >= self._timeout_ns:  # a root never ended (a leaked span)
                verdict = self._verdicts.forced(
                    trace_id, root._context[4], start, None, TIMEOUT, now
                )
                due.append((trace_id, verdict, root))
        return [
            self._decide_open_locked(trace_id, root, verdict) for trace_id, verdict, root in due
        ]

    def _promote_open_locked(self, trace_id: int, root: Any) -> None:
        """A request running past the slow threshold gets a buffer marked promoted (see sweep):
        it is decided there when it ends, with whatever else its trace holds by then."""
        start = root._start_time
        state = root._context[4]
        entry = PendingTrace(start, state)
        entry.started.append(1)  # the root itself, still running
        entry.root_start = start
        entry.promoted = self._verdicts.certain(RULE_SLOW, SLOW_TICK, state)
        offers, root._offers = root._offers, None
        if offers:
            entry.exemplars = offers
        root._joined = True
        del self._open[trace_id]
        self._pending[trace_id] = entry

    def _decide_all_open_locked(self, trigger: str, now: int) -> list[tuple[int, Verdict, Any]]:
        """Flush and shutdown: decide every running root that has no buffer of its own.

        (Called after every buffer was decided: a root joined to one follows that decision.)
        """
        return [
            self._decide_open_locked(
                trace_id,
                root,
                self._verdicts.forced(
                    trace_id, root._context[4], root._start_time, None, trigger, now
                ),
            )
            for trace_id, root in list(self._open.items())
            if not root._joined
        ]
