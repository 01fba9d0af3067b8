"""The tail sampler's fast path for requests: a SERVER span that opens no buffer.

Most requests are a single span, ended and dropped. A request's lightweight ``ServerSpan``
(:mod:`obskit.tracing.server_span`) is therefore only noted as running, in
:attr:`RequestRoots.open`, one dict operation with no lock; the sampler's ``state`` reports its
trace as pending, so its debug lines are held as for any trace. When it ends with nothing else
buffered, its trace is decided in one locked step. Otherwise it joins the general path
(:class:`~obskit.tracing.buffer.TraceBuffer`):

- a child span that starts opens the trace's buffer (with the root's start time, so a slow
  request is still promoted by the tick), and the root, when it ends, is decided with it;
- exemplars offered meanwhile wait on the span (bounded like a buffer's) and follow the decision;
- the tick keeps a root running past the slow threshold, and decides one running past the
  trace timeout (a span never ended); flush and shutdown decide running roots too. A root
  decided before it ends follows its decision when it ends (the general path's late spans).

Request threads add to :attr:`RequestRoots.open` without the lock, so whatever walks it (the
tick, a flush) walks a copy made in one step (``dict.copy`` runs no Python code, so no other
thread changes the dict while it is copied), never the dict itself.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time_ns
from typing import Any

from obskit import _guard
from obskit.tracing.buffer import Shared, TraceBuffer
from obskit.tracing.dispatch import Settled, apply_exemplars
from obskit.tracing.pending import PendingTrace
from obskit.tracing.policies import RULE_SLOW, Verdict
from obskit.tracing.verdicts import SLOW_TICK, SPAN_END, TIMEOUT

__all__ = ["RequestRoots"]


class RequestRoots:
    """Requests' root spans that run with no buffer of their own, and their decisions."""

    def __init__(self, shared: Shared, buffer: TraceBuffer) -> None:
        self._lock, self._ledger = shared.lock, shared.ledger
        self._memory = shared.ledger.memory
        verdicts = self._verdicts = shared.verdicts
        self._root, self._certain = verdicts.root, verdicts.certain
        self._match = shared.match
        self._dispatch = shared.dispatch
        self._listeners = shared.dispatch.listeners
        self._pending = buffer.pending
        self._general_start, self._general_end = buffer.on_start, buffer.on_end
        self._ticker = shared.ticker  # started with the first request
        self._max_traces = shared.caps.max_traces
        self._slow_ns, self._timeout_ns = verdicts.slow_ns, shared.caps.timeout_ns
        # Running request roots with no buffer, by trace id (most never need one).
        self.open: dict[int, Any] = {}
        buffer.running = self.open  # a span that opens a buffer joins the running root to it
        self._ticking = self._ticker is None  # (True: nothing to start; no call per request)

    def clear(self) -> None:
        """Forget every running root, in place (a forked child)."""
        self.open.clear()
        self._ticking = self._ticker is None

    def open_server_span(self, span: Any) -> None:
        """A request's lightweight ``ServerSpan`` starts (it has ``_offers``, a list or None).

        Most requests are one span, so such a root opens no buffer: it is only noted as running
        (``state`` says PENDING, so its debug lines are held). A buffer is made when something
        needs one (a child span starts); exemplars offered meanwhile wait on the span itself.
        """
        trace_id = span._context[0]
        parent = span._parent
        running = self.open
        if (
            trace_id in self._pending
            or len(running) >= self._max_traces
            or (parent is not None and self._memory.knows(trace_id))
            # One dict operation, atomic under the GIL: of two requests of one trace (a fan-out
            # from upstream) starting at once, the second finds the first and goes the general way.
            or running.setdefault(trace_id, span) is not span
        ):
            self._general_start(span)
            return
        if not self._ticking:
            self._ticking = True
            self._ticker.start()  # type: ignore[union-attr]  # (None sets _ticking)

    def end_server_span(self, span: Any) -> None:
        """The general ``on_end`` for a request's lightweight ``ServerSpan`` (plain containers)."""
        attrs, events = span._attributes, span._events
        context = span._context
        trace_id = context[0]
        running: Any = self.open.get(trace_id)
        if running is not span:  # registered the general way, or decided already
            self._general_end(span)
            return
        try:
            try:
                rule = self._match(span, attrs, events)
            except Exception as exc:  # the user's predicate failed: count it, treat as no match
                _guard.report("tracing.keep_if", exc)
                rule = None
            state = context[4]
            if rule is not None:
                verdict = self._certain(rule, SPAN_END, state)
            else:
                verdict = self._root(trace_id, state, span)
            with self._lock:
                still_open = self.open.get(trace_id) is span
                if still_open:
                    del self.open[trace_id]
                    offers, span._offers = span._offers, None
                    entry = self._pending.get(trace_id)
                    if entry is not None:
                        if offers:  # a child opened a buffer: the offers wait there now
                            entry.exemplars = (entry.exemplars or []) + offers
                            offers = None
                    elif (span._joined and self._memory.knows(trace_id)) or (
                        not self._ledger.record_decision(
                            trace_id, verdict, 1, len(offers) if offers else 0, True
                        )
                    ):
                        # A child's end already decided the trace (an error keeps it at once),
                        # or another request's root of the same upstream trace did.
                        prior = self._memory.is_kept(trace_id)
                        if offers:
                            self._ledger.exemplars_settled(prior, len(offers))
                            if not prior:
                                offers = None
                    else:
                        prior = None
        except Exception as exc:  # a span processor must never raise into user code
            _guard.report("tracing.on_end", exc)
            return
        if not still_open:
            # Decided while the rules ran (the tick, a flush): the span follows that decision.
            self._general_end(span)
            return
        if entry is not None:
            # Children made a buffer while the root ran: decide with them, the general way.
            entry.started.append(1)
            self._general_end(span)
            return
        if prior is not None:
            # The root follows its children's decision (the late path exports it if kept).
            if offers:
                apply_exemplars(offers)
            self._general_end(span)
            return
        if verdict.keep:
            self._dispatch.finish(((trace_id, None, verdict, [span]),))
            if offers:
                apply_exemplars(offers)
        if self._listeners:
            self._dispatch.tell(trace_id, verdict.keep)

    def forget_server_span(self, span: Any) -> bool:
        """End a request's lone root with no decision at all: the request is excluded.

        True when the span was running alone (no buffer, not joined, not decided): it is gone,
        exemplars waiting on it are discarded and listeners (the log buffer) hear "dropped".
        False otherwise; the caller then ends it as usual.
        """
        trace_id = span._context[0]
        try:
            with self._lock:
                running: Any = self.open.get(trace_id)
                if running is not span or span._joined or trace_id in self._pending:
                    return False
                del self.open[trace_id]
                offers, span._offers = span._offers, None
                if offers:
                    self._ledger.exemplars_settled(False, len(offers))
            span._end_time = time_ns()
        except Exception as exc:  # never raised into the request
            _guard.report("tracing.on_end", exc)
            return False
        self._dispatch.tell(trace_id, False)
        return True

    def offers_locked(self, trace_id: int) -> list[Callable[[], None]] | None:
        """Where exemplars offered for a running request with no trace buffer wait: its span."""
        root = self.open.get(trace_id)
        if root is None:
            return None
        if root._offers is None:
            root._offers = []
        offers: list[Callable[[], None]] = root._offers
        return offers

    def _decide_locked(self, trace_id: int, root: Any, verdict: Verdict) -> Settled:
        """Decide a running root's trace before the root ends (it follows when it does)."""
        del self.open[trace_id]
        offers, root._offers = root._offers, None
        self._ledger.record_decision(trace_id, verdict, 0, len(offers) if offers else 0)
        return trace_id, verdict, offers

    # --- the tick, flush, shutdown -----------------------------------------------------------

    def due(self, now: int) -> list[tuple[int, Any]]:
        """Running roots old enough that the tick may act on them (lock-free, from a copy)."""
        horizon = now - min(self._slow_ns, self._timeout_ns)
        return [
            (trace_id, root)
            for trace_id, root in self.open.copy().items()
            if root._start_time <= horizon
        ]

    def sweep_locked(
        self, now: int, candidates: list[tuple[int, Any]], promoted: list[int]
    ) -> list[Settled]:
        """The tick's part for running roots (``candidates``, from :meth:`due`): promote the
        slow ones (appended to ``promoted``), decide the abandoned ones.

        A root whose trace has a buffer (``_joined``) is promoted and decided with that buffer,
        and one whose trace another request decided follows that decision: either only
        follows when it ends. One abandoned past the timeout, whose trace was decided,
        is let go here (its decision was counted with its trace).
        """
        running, pending = self.open, self._pending
        due: list[tuple[int, Any, Verdict]] = []
        for trace_id, root in candidates:
            if trace_id not in running or running[trace_id] is not root:
                continue  # ended, or decided, since the copy was made
            start = root._start_time
            if self._follows_locked(trace_id, root) or trace_id in pending:
                if now - start >= self._timeout_ns and trace_id not in pending:
                    del running[trace_id]
                continue
            if now - start >= self._slow_ns:
                self._promote_locked(trace_id, root)
                promoted.append(trace_id)
            elif now - start >= self._timeout_ns:  # a root never ended (a leaked span)
                verdict = self._verdicts.forced(
                    trace_id, root._context[4], start, None, TIMEOUT, now
                )
                due.append((trace_id, root, verdict))
        return [self._decide_locked(trace_id, root, verdict) for trace_id, root, verdict in due]

    def _promote_locked(self, trace_id: int, root: Any) -> None:
        """A request running past the slow threshold gets a buffer marked promoted (see
        ``TailSampler.sweep``): it is decided there when it ends, with whatever else its trace
        holds by then."""
        start = root._start_time
        state = root._context[4]
        entry = PendingTrace(start, state)
        entry.started.append(1)  # the root itself, still running
        entry.root_start = start
        entry.promoted = self._certain(RULE_SLOW, SLOW_TICK, state)
        offers, root._offers = root._offers, None
        if offers:
            entry.exemplars = offers
        root._joined = True
        del self.open[trace_id]
        self._pending[trace_id] = entry

    def decide_all_locked(self, trigger: str, now: int) -> list[Settled]:
        """Flush and shutdown: decide every running root that has no buffer of its own.

        (Called after every buffer was decided: a root joined to one follows that decision.)
        """
        forced = self._verdicts.forced
        return [
            self._decide_locked(
                trace_id,
                root,
                forced(trace_id, root._context[4], root._start_time, None, trigger, now),
            )
            for trace_id, root in self.open.copy().items()
            if not self._follows_locked(trace_id, root)
        ]

    def _follows_locked(self, trace_id: int, root: Any) -> bool:
        """Whether a running root's trace is decided elsewhere: by a buffer it joined, or (an
        upstream trace) by another request's root that registered and ended first."""
        return bool(root._joined) or (root._parent is not None and self._memory.knows(trace_id))
