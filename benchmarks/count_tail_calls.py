"""Tail sampler: Python and C calls per lone request and per SDK trace, counted (not timed).

Usage: ``.venv/bin/python benchmarks/count_tail_calls.py`` (a second or two). To compare with
another tree, run it again with ``PYTHONPATH=<that tree>/src``.

Wall time on a shared machine is noise; the number of calls a path makes is not. Counted with
``sys.setprofile`` over 200 repetitions after a warm-up: a request's lightweight SERVER span
started and ended alone (its trace dropped; once more with a remote parent, as behind an
instrumented caller), and an SDK trace of a root and four children.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext

from obskit.tracing.server_span import start_server_span
from obskit.tracing.tail import TailSampler

REPEATS = 200
_WARM_UP = 50


class NullSink:
    """A KeptSink that drops everything (nothing is kept at a 0 baseline anyway)."""

    def submit(self, spans: Sequence[ReadableSpan], lane: int) -> None:
        return None

    def force_flush(self, timeout: float) -> bool:
        return True

    def shutdown(self, timeout: float, undecided: int = 0) -> None:
        return None

    def after_fork_in_child(self) -> None:
        return None


def main() -> None:
    sampler = TailSampler(NullSink(), background=False, max_traces=100_000, baseline_ratio=0.0)
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(sampler)
    tracer = provider.get_tracer("count")
    attributes = {"http.route": "/x", "http.response.status_code": 200}

    def lone_request() -> None:
        start_server_span(tracer, "GET /x", None, dict(attributes)).end()

    # A new upstream trace each time (made beforehand: only next() is counted with it).
    remotes = iter(
        [
            trace.set_span_in_context(NonRecordingSpan(SpanContext(1 + n, 1 + n, True)))
            for n in range(REPEATS + _WARM_UP)
        ]
    )

    def lone_request_with_remote_parent() -> None:
        start_server_span(tracer, "GET /x", next(remotes), dict(attributes)).end()

    def sdk_trace() -> None:
        root = tracer.start_span("root")
        parent = trace.set_span_in_context(root)
        for _ in range(4):
            tracer.start_span("child", context=parent).end()
        root.end()

    python = sys.version.split()[0]
    print(f"# count_tail_calls: calls per unit, {REPEATS} repetitions, Python {python}")
    print("| unit | Python calls | C calls |")
    print("|---|---:|---:|")
    units = (
        ("lone request", lone_request),
        ("lone request, remote parent", lone_request_with_remote_parent),
        ("SDK trace of 5 spans", sdk_trace),
    )
    for name, unit in units:
        counts = _count(unit)
        print(f"| {name} | {counts['call']:.1f} | {counts['c_call']:.1f} |")


def _count(unit: Callable[[], None]) -> dict[str, float]:
    for _ in range(_WARM_UP):
        unit()
    events: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            events[event] += 1

    sys.setprofile(profile)
    try:
        for _ in range(REPEATS):
            unit()
    finally:
        sys.setprofile(None)
    # Less the loop's own call of unit() (one per repetition) and setprofile(None) (one C call).
    return {"call": events["call"] / REPEATS - 1, "c_call": (events["c_call"] - 1) / REPEATS}


if __name__ == "__main__":
    main()
