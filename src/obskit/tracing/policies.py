"""Keep rules and weights: what makes a trace worth keeping, decided from its spans.

Two kinds of rule. *Certain* rules (an error, a server 5xx, a slow span, an attribute rule, the
user's ``keep_if``) keep a trace with probability one, so its weight (adjusted count) is 1. The
*baseline* keeps a consistent share of the remaining traces with OpenTelemetry's threshold
semantics: randomness R is the low 56 bits of the trace id (or ``ot=rv:`` in tracestate), the
threshold is T = (1 - p) * 2^56, and a trace is kept when R >= T. Every service configured with the
same ratio therefore keeps the same baseline traces, and a kept span carries ``ot=th:<T>`` and the
adjusted count 2^56 / (2^56 - T) so that counts can be estimated from what was kept.

Everything here is chosen once, at configuration time: :func:`span_rule` returns a closure that
checks only the rules that are switched on.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode, TraceState

from obskit import _locks
from obskit._tracestate import MAX_VALUE_CHARS, put_first

__all__ = [
    "LANES",
    "LANE_BASELINE",
    "LANE_ERROR",
    "LANE_RULE",
    "LANE_SLOW",
    "MASK56",
    "MAX_THRESHOLD",
    "RULE_ATTRIBUTE",
    "RULE_BASELINE",
    "RULE_ERROR",
    "RULE_KEEP_IF",
    "RULE_SERVER_ERROR",
    "RULE_SLOW",
    "RouteLatency",
    "Verdict",
    "adjusted_count",
    "encode_threshold",
    "lane_of",
    "parse_ot",
    "randomness",
    "span_rule",
    "threshold_for",
]

MAX_THRESHOLD = 1 << 56  # 2^56: "keep nothing"; the largest usable threshold is 2^56 - 1
MASK56 = MAX_THRESHOLD - 1  # the randomness bits of a trace id
_PRECISION_DIGITS = 5

RULE_ERROR = "error"
RULE_SERVER_ERROR = "server_error"
RULE_SLOW = "slow"
RULE_ATTRIBUTE = "attribute"
RULE_KEEP_IF = "keep_if"
RULE_BASELINE = "baseline"
RULE_ALL = "all"
RULE_NONE = "none"  # the rule of a drop: nothing matched

# Where a kept span waits for export, best first: errors outrank the user's keep rules, which
# outrank slow traces, which outrank the baseline (obskit.tracing.export.ExportLanes).
LANES = ("error", "rule", "slow", "baseline")
LANE_ERROR, LANE_RULE, LANE_SLOW, LANE_BASELINE = range(len(LANES))
_LANE_OF_RULE = {
    RULE_ERROR: LANE_ERROR,
    RULE_SERVER_ERROR: LANE_ERROR,
    RULE_ATTRIBUTE: LANE_RULE,
    RULE_KEEP_IF: LANE_RULE,
    RULE_SLOW: LANE_SLOW,
}


def lane_of(rule: str) -> int:
    """The export lane of spans kept by ``rule`` (the baseline's for anything else)."""
    return _LANE_OF_RULE.get(rule, LANE_BASELINE)


class Verdict:
    """One trace's decision: kept or not, which rule, what triggered it, and its weight.

    Compared and hashed by identity: the common verdicts are shared constants, and counting
    decisions per verdict object spares hashing five fields per trace.
    """

    __slots__ = ("adjusted", "keep", "lane", "rule", "threshold", "trigger")

    def __init__(self, keep: bool, rule: str, trigger: str, threshold: int, adjusted: float):
        self.keep = keep
        self.rule = rule
        self.trigger = trigger
        self.threshold = threshold  # OpenTelemetry ``th``: 0 keeps everything
        self.adjusted = adjusted  # the number of traces this kept one stands for
        self.lane = _LANE_OF_RULE.get(rule, LANE_BASELINE)  # where its spans wait for export

    def with_trigger(self, trigger: str) -> Verdict:
        """The same decision, made by another trigger."""
        return Verdict(self.keep, self.rule, trigger, self.threshold, self.adjusted)

    def __repr__(self) -> str:
        return (
            f"Verdict(keep={self.keep}, rule={self.rule!r}, trigger={self.trigger!r}, "
            f"threshold={self.threshold:#x}, adjusted={self.adjusted})"
        )


def threshold_for(ratio: float) -> int:
    """The threshold T = (1 - p) * 2^56 for a keep probability ``ratio`` (0 keeps nothing).

    The kept share 2^56 - T is rounded to 5 significant hex digits, so ``th`` stays short
    (1% -> ``fd70a4``) at a relative precision of about 2^-16 whatever the ratio.
    """
    if ratio >= 1.0:
        return 0
    if ratio <= 0.0:
        return MAX_THRESHOLD
    keep = round(ratio * MAX_THRESHOLD)
    digits = (keep.bit_length() + 3) // 4
    if digits > _PRECISION_DIGITS:
        shift = 4 * (digits - _PRECISION_DIGITS)
        keep = ((keep + (1 << (shift - 1))) >> shift) << shift
    return min(MAX_THRESHOLD - 1, max(0, MAX_THRESHOLD - keep))


def encode_threshold(threshold: int) -> str:
    """``th`` as written in tracestate: 14 hex digits with trailing zeros trimmed (0 -> "0")."""
    if threshold <= 0:
        return "0"
    return f"{threshold:014x}".rstrip("0")


def decode_threshold(text: str) -> int | None:
    """The inverse of :func:`encode_threshold`; None for a malformed value."""
    if not 1 <= len(text) <= 14:
        return None
    try:
        return int(text.ljust(14, "0"), 16)
    except ValueError:
        return None


def adjusted_count(threshold: int) -> float:
    """How many traces one kept at ``threshold`` represents: 2^56 / (2^56 - T)."""
    if threshold >= MAX_THRESHOLD:
        return 0.0
    return MAX_THRESHOLD / (MAX_THRESHOLD - threshold)


def parse_ot(trace_state: TraceState | None) -> tuple[int | None, int | None]:
    """The ``th`` threshold and ``rv`` randomness from the ``ot`` tracestate entry, if present."""
    if not trace_state:
        return None, None
    value = trace_state.get("ot")
    if not value:
        return None, None
    threshold = rv = None
    for part in value.split(";"):
        key, _, sub = part.partition(":")
        if key == "th":
            threshold = decode_threshold(sub)
        elif key == "rv" and len(sub) == 14:
            try:
                rv = int(sub, 16)
            except ValueError:
                rv = None
    return threshold, rv


def randomness(trace_id: int, trace_state: TraceState | None = None) -> int:
    """The trace's 56 bits of randomness: explicit ``ot=rv:`` or the trace id's low 56 bits."""
    if trace_state:
        _, rv = parse_ot(trace_state)
        if rv is not None:
            return rv
    return trace_id & MASK56


def with_threshold(trace_state: TraceState, threshold: int) -> TraceState:
    """``trace_state`` with ``ot=th:`` set (other ``ot`` sub-keys and entries are kept)."""
    th = "th:" + encode_threshold(threshold)
    old = trace_state.get("ot")
    if old is None:
        return put_first(trace_state, "ot", th)
    parts = [p for p in (p.strip(" ") for p in old.split(";")) if p and not p.startswith("th:")]
    value = ";".join([th, *parts])
    while len(value) > MAX_VALUE_CHARS and parts:  # our th may be longer than the one replaced
        parts.pop()
        value = ";".join([th, *parts])
    # The changed entry moves to the front (W3C Trace Context 3.5), by obskit's rules rather than
    # the SDK's: older SDKs update in place, and none adds to a full list.
    return put_first(trace_state, "ot", value)


SpanRule = Callable[[ReadableSpan, Any, Any], "str | None"]


def span_rule(
    slow_threshold_ns: int,
    keep_rules: tuple[tuple[str, str], ...] = (),
    keep_if: Callable[[ReadableSpan], Any] | None = None,
) -> SpanRule:
    """A closure naming the certain rule an ended span matches (None for an ordinary span).

    The closure is called with the span and its attributes and events (the caller has them).

    Error first (status ERROR or a recorded exception), then server 5xx, a slow span, the
    attribute rules, and last the user's predicate, which is the only one that may be slow.
    """
    error = StatusCode.ERROR
    server = SpanKind.SERVER
    rules = tuple(keep_rules)

    def matches(span: ReadableSpan, attrs: Any, events: Any) -> str | None:
        """``attrs`` and ``events``: the span's attribute mapping and event sequence."""
        if span._status._status_code is error:
            return RULE_ERROR
        if events:
            for event in events:
                if event.name == "exception":
                    return RULE_ERROR
        if span._kind is server and attrs:
            code = attrs.get("http.response.status_code")
            if isinstance(code, int) and code >= 500:
                return RULE_SERVER_ERROR
        end, start = span._end_time, span._start_time
        if end is not None and start is not None and end - start >= slow_threshold_ns:
            return RULE_SLOW
        if rules and attrs:
            for key, expected in rules:
                value = attrs.get(key)
                if value is not None and str(value) == expected:
                    return RULE_ATTRIBUTE
        if keep_if is not None and keep_if(span):
            return RULE_KEEP_IF
        return None

    return matches


class RouteLatency:
    """Live per-route latency: a ring of recent local-root durations and its p99.

    Bounded: at most ``max_routes`` routes, each with a ring of ``window`` durations; routes past
    the limit fall back to the fixed threshold. The p99 is recomputed every ``window // 8``
    observations, so the hot path is an array store and a counter step.
    """

    def __init__(self, max_routes: int = 256, window: int = 1024, min_samples: int = 100) -> None:
        self._max_routes = max_routes
        self._window = window
        self._min_samples = min_samples
        self._refresh = max(1, window // 8)
        self._lock = _locks.lock()
        self._rings: dict[str, tuple[array[float], itertools.count[int]]] = {}
        self._p99: dict[str, float] = {}

    def threshold_ns(self, route: str) -> float | None:
        """The route's current p99 in nanoseconds, or None while it has too few samples."""
        return self._p99.get(route)

    def observe(self, route: str, duration_ns: float) -> None:
        """Record one local-root duration for ``route``."""
        ring = self._rings.get(route)
        if ring is None:
            with self._lock:
                if len(self._rings) >= self._max_routes:
                    return
                ring = self._rings.setdefault(route, (array("d"), itertools.count()))
        values, counter = ring
        n = next(counter)
        if len(values) < self._window:
            values.append(duration_ns)
        else:
            values[n % self._window] = duration_ns
        if n + 1 >= self._min_samples and (n + 1) % self._refresh == 0:
            ordered = sorted(values)
            self._p99[route] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def snapshot(self) -> dict[str, float]:
        """Current p99 per route, in nanoseconds."""
        return dict(self._p99)
