"""An undecided trace as the tail sampler holds it, and what holding a span costs.

The byte estimate decides when the buffer is full, so it must not flatter: it was measured with
``tracemalloc`` on the SDK's ``ReadableSpan`` (its instance dict, bounded attribute dict and event
list, each with a lock) at about 2.6 KB for an empty span, ~160 B per short attribute and ~600 B
per event, and rounded up.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import TraceState

from obskit.tracing.policies import Verdict

__all__ = [
    "ATTRIBUTE_BYTES",
    "EVENT_BYTES",
    "MAX_EXEMPLARS_PER_TRACE",
    "SPAN_BASE_BYTES",
    "PendingTrace",
]

SPAN_BASE_BYTES = 2_900
ATTRIBUTE_BYTES = 180
EVENT_BYTES = 700

# Exemplars held per undecided trace (a request makes a handful of RED observations).
MAX_EXEMPLARS_PER_TRACE = 16


class PendingTrace:
    """One undecided trace's buffer: its spans, what still runs, and what waits on it."""

    __slots__ = (
        "created",
        "exemplars",
        "nbytes",
        "promoted",
        "root_end",
        "root_start",
        "root_verdict",
        "spans",
        "started",
        "trace_state",
    )

    def __init__(self, created: int, trace_state: TraceState | None) -> None:
        self.spans: list[ReadableSpan] = []
        self.nbytes = 0
        # One byte per local span started: started minus ended (``spans``) is what still runs.
        self.started = bytearray()
        self.created = created
        self.root_start: int | None = None
        self.root_end: int | None = None
        self.root_verdict: Verdict | None = None
        # Set by the tick when the root runs past the slow threshold: the trace will be kept
        # (at least as slow), but its spans still wait for its end (or a cap, or the timeout).
        self.promoted: Verdict | None = None
        self.trace_state = trace_state
        self.exemplars: list[Callable[[], None]] | None = None
