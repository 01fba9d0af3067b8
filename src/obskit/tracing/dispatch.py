"""What the tail sampler does with a decision once its lock is let go.

Kept spans are annotated and handed to the sink (the export lanes) in their verdict's lane;
exemplars that waited on the trace are applied if it was kept; listeners (the debug-log buffer)
hear the outcome. None of it runs under the sampler's lock: an exporter, an exemplar or a
listener may be slow or fail, and every failure is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.sdk.trace import ReadableSpan

from obskit import _guard
from obskit.tracing.export import KeptSink
from obskit.tracing.pending import PendingTrace
from obskit.tracing.policies import Verdict
from obskit.tracing.verdicts import LATE_SPAN, annotate

__all__ = ["Decided", "Dispatch", "Settled"]

# A decision made under the lock: the trace, its buffer (None for spans that followed an earlier
# decision), the verdict and the spans it covers.
Decided = tuple[int, PendingTrace | None, Verdict, "list[ReadableSpan]"]
# A running request root decided before it ended: the trace, the verdict and its exemplars.
Settled = tuple[int, Verdict, "list[Callable[[], None]] | None"]


class Dispatch:
    """Carries out decisions: export what is kept, apply exemplars, tell the listeners."""

    def __init__(self, sink: KeptSink) -> None:
        self.sink = sink
        # Callbacks told of every decision (trace id, kept): the log buffer.
        self.listeners: list[Callable[[int, bool], None]] = []

    def finish(self, decided: Iterable[Decided]) -> None:
        """Export the kept spans of ``decided``; then exemplars and listeners for each trace."""
        for trace_id, entry, verdict, spans in decided:
            late = entry is None
            if verdict.keep and spans:
                flag = late and verdict.trigger == LATE_SPAN
                kept = [annotate(span, verdict, flag) for span in spans]
                try:
                    self.sink.submit(kept, verdict.lane)
                except Exception as exc:
                    _guard.report("tracing.export", exc)
            if entry is None:
                continue
            if entry.exemplars and verdict.keep:
                apply_exemplars(entry.exemplars)
            self.tell(trace_id, verdict.keep)

    def settle(self, settled: Iterable[Settled]) -> None:
        """Exemplars and listeners for running roots decided before they ended."""
        for trace_id, verdict, offers in settled:
            if offers and verdict.keep:
                apply_exemplars(offers)
            self.tell(trace_id, verdict.keep)

    def tell(self, trace_id: int, keep: bool) -> None:
        """Tell every listener the trace's outcome (kept: its held debug lines are written)."""
        for listener in self.listeners:
            try:
                listener(trace_id, keep)
            except Exception as exc:
                _guard.report("tracing.listener", exc)


def apply_exemplars(applies: Iterable[Callable[[], None]]) -> None:
    """Apply exemplars of a kept trace (each failure reported, the others still applied)."""
    for apply in applies:
        try:
            apply()
        except Exception as exc:
            _guard.report("tracing.exemplar", exc)
