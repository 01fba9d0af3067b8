"""What a decision is made of, and how a kept span carries it.

:class:`VerdictMaker` turns the facts of a trace (its id's randomness, an upstream ``th``, its
root's duration and route, what forced the decision) into a :class:`Verdict`; the common ones
are constants built once. :func:`annotate` writes a verdict onto a kept span: the rule, the
trigger, the adjusted count, and OpenTelemetry's ``ot=th`` in the span's tracestate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceState

from obskit._compat import otel as otel_compat
from obskit.tracing import policies
from obskit.tracing.policies import MASK56, RULE_BASELINE, RULE_NONE, RULE_SLOW, Verdict

__all__ = [
    "ADJUSTED_COUNT",
    "FLUSH",
    "LATE",
    "LATE_SPAN",
    "OVERFLOW",
    "ROOT_END",
    "RULE",
    "SLOW_TICK",
    "SPAN_END",
    "TIMEOUT",
    "TRIGGER",
    "VerdictMaker",
    "annotate",
]

# Attributes on every kept span.
RULE = "obskit.sampling.rule"
TRIGGER = "obskit.sampling.trigger"
ADJUSTED_COUNT = "obskit.sampling.adjusted_count"
LATE = "obskit.sampling.late"

# Triggers: what made the decision happen.
SPAN_END = "span_end"
ROOT_END = "root_end"
SLOW_TICK = "slow_tick"
TIMEOUT = "timeout"
OVERFLOW = "overflow"
FLUSH = "flush"
LATE_SPAN = "late"


class VerdictMaker:
    """Builds verdicts for one configuration (baseline ratio, slow threshold, per-route)."""

    def __init__(self, baseline_ratio: float, slow_ns: int, slow_per_route: bool) -> None:
        self.baseline_threshold = policies.threshold_for(baseline_ratio)
        weight = policies.adjusted_count(self.baseline_threshold)
        self._baseline = {
            trigger: (
                Verdict(True, RULE_BASELINE, trigger, self.baseline_threshold, weight),
                Verdict(False, RULE_NONE, trigger, self.baseline_threshold, 0.0),
            )
            for trigger in (ROOT_END, TIMEOUT, OVERFLOW, FLUSH)
        }
        self.root_keep, self.root_drop = self._baseline[ROOT_END]
        self.slow_ns = slow_ns
        self.routes = policies.RouteLatency() if slow_per_route else None
        self.root = self._root_verdict()

    def _root_verdict(self) -> Callable[[int, TraceState, ReadableSpan], Verdict]:
        """The one verdict for a trace whose local root ended with no certain rule matched,
        specialised now: without per-route latency, the common root (no upstream sampling)
        is decided by one comparison to one of two constants."""
        general = self.root_end
        if self.routes is not None:
            return general
        keep, drop, threshold = self.root_keep, self.root_drop, self.baseline_threshold

        def root(trace_id: int, state: TraceState, span: ReadableSpan) -> Verdict:
            # An empty TraceState's truth test is a Python-level __len__: look at its dict.
            if not getattr(state, "_dict", state):
                return keep if trace_id & MASK56 >= threshold else drop
            return general(trace_id, state, span)

        return root

    @staticmethod
    def certain(rule: str, trigger: str, state: TraceState | None) -> Verdict:
        """A keep by a certain rule: weight 1, keeping an upstream threshold (never lowering)."""
        upstream, _ = policies.parse_ot(state)
        return Verdict(True, rule, trigger, upstream or 0, 1.0)

    def root_end(self, trace_id: int, state: TraceState, root: ReadableSpan) -> Verdict:
        """:attr:`root`'s general case: per-route slowness, then the baseline."""
        routes = self.routes
        attrs = root._attributes
        if routes is not None and attrs:
            route = attrs.get("http.route")
            if isinstance(route, str) and root._end_time and root._start_time:
                duration = root._end_time - root._start_time
                threshold = routes.threshold_ns(route)
                routes.observe(route, duration)
                if threshold is not None and duration > threshold:
                    return self.certain(RULE_SLOW, ROOT_END, state)
        return self.baseline(trace_id, state, ROOT_END)

    def baseline(self, trace_id: int, state: TraceState | None, trigger: str) -> Verdict:
        """Kept when the trace's randomness reaches the threshold (raised by an upstream th)."""
        # An empty TraceState's truth test is a Python-level __len__: look at its dict instead.
        if state is None or not getattr(state, "_dict", state):
            keep, drop = self._baseline[trigger]
            return keep if trace_id & MASK56 >= self.baseline_threshold else drop
        upstream, rv = policies.parse_ot(state)
        threshold = max(self.baseline_threshold, upstream or 0)
        rand = rv if rv is not None else trace_id & MASK56
        if rand >= threshold:
            weight = policies.adjusted_count(threshold)
            return Verdict(True, RULE_BASELINE, trigger, threshold, weight)
        return Verdict(False, RULE_NONE, trigger, threshold, 0.0)

    def forced(
        self,
        trace_id: int,
        state: TraceState | None,
        root_start: int | None,
        root_verdict: Verdict | None,
        trigger: str,
        now: int,
    ) -> Verdict:
        """A decision forced before the trace finished: its root's verdict, slow, or baseline."""
        if root_verdict is not None:
            return root_verdict.with_trigger(trigger)
        if root_start is not None and now - root_start >= self.slow_ns:
            return self.certain(RULE_SLOW, trigger, state)
        return self.baseline(trace_id, state, trigger)


def annotate(span: ReadableSpan, verdict: Verdict, late: bool = False) -> ReadableSpan:
    """A copy of ``span`` carrying the decision: rule, trigger, adjusted count and ``ot=th``.

    ``ReadableSpan`` is frozen once ended, so the copy is a new one sharing the immutable parts.
    A request's lightweight SERVER span has its attributes validated here, now that it is kept.
    """
    settled = getattr(span, "settled_attributes", None)
    attributes: dict[str, Any] = dict(settled() if settled is not None else span._attributes or {})
    attributes[RULE] = verdict.rule
    attributes[TRIGGER] = verdict.trigger
    attributes[ADJUSTED_COUNT] = verdict.adjusted
    if late:
        attributes[LATE] = True
    context = span._context
    if context is not None:
        state = policies.with_threshold(context.trace_state, verdict.threshold)
        context = SpanContext(
            context.trace_id,
            context.span_id,
            context.is_remote,
            context.trace_flags,
            state,
        )
    return otel_compat.copy_span(span, context=context, attributes=attributes)
