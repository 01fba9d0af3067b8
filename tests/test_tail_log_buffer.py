"""The per-trace debug-log buffer: held, written in order, discarded, and bounded."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from obskit.logs.buffer import TraceLogBuffer

PENDING, KEPT, DROPPED = 1, 2, 3


class _States:
    """A stand-in for the sampler's ``state``: every trace pending unless decided here."""

    def __init__(self) -> None:
        self.decided: dict[int, int] = {}

    def __call__(self, trace_id: int) -> int:
        return self.decided.get(trace_id, PENDING)


def _in_trace() -> tuple[trace.Span, int]:
    span = TracerProvider().get_tracer("t").start_span("op")
    return span, span.get_span_context().trace_id


def test_lines_are_written_in_order_when_kept_and_discarded_when_dropped() -> None:
    """A kept trace's lines come out in the order logged; a dropped trace's are counted away."""
    states, written = _States(), []
    buffer = TraceLogBuffer(states, write=written.append)
    kept, kept_id = _in_trace()
    dropped, dropped_id = _in_trace()
    for span, lines in ((kept, [b"a", b"b", b"c"]), (dropped, [b"x", b"y"])):
        with trace.use_span(span):
            assert buffer.active()
            for line in lines:
                buffer.hold(line, {})
    assert [] == written
    states.decided[kept_id] = KEPT
    buffer.release(kept_id, True)
    states.decided[dropped_id] = DROPPED
    buffer.release(dropped_id, False)
    assert [b"a", b"b", b"c"] == written
    assert {"held": 5, "written": 3, "discarded": 2, "overflow": 0} == buffer.counts
    assert (0, 0) == buffer.held()


def test_per_trace_and_total_caps_count_what_they_refuse() -> None:
    """Past the lines-per-trace or total-bytes cap a line is refused and counted as overflow."""
    buffer = TraceLogBuffer(_States(), max_lines_per_trace=3, max_bytes=50, write=lambda _: None)
    first, _ = _in_trace()
    second, _ = _in_trace()
    with trace.use_span(first):
        for _ in range(5):
            buffer.hold(b"0123456789", {})
    with trace.use_span(second):
        for _ in range(5):
            buffer.hold(b"0123456789", {})
    assert 5 == buffer.counts["held"]  # 3 for the first trace, then the 50-byte total is full
    assert 5 == buffer.counts["overflow"]
    assert (2, 50) == buffer.held()


def test_outside_a_trace_or_in_a_decided_one_nothing_is_held() -> None:
    """No current trace: not active; a kept trace writes at once; a dropped one discards."""
    states, written = _States(), []
    buffer = TraceLogBuffer(states, write=written.append)
    assert not buffer.active()
    span, trace_id = _in_trace()
    with trace.use_span(span):
        states.decided[trace_id] = KEPT
        buffer.hold(b"now", {})
        states.decided[trace_id] = DROPPED
        assert not buffer.active()
        buffer.hold(b"never", {})
    assert [b"now"] == written
    assert 1 == buffer.counts["discarded"]


def test_a_decision_racing_the_hold_still_settles_the_line() -> None:
    """If the trace is decided between the check and the append, the line is still written."""
    answers = iter([PENDING, KEPT])
    written: list[bytes | str] = []
    buffer = TraceLogBuffer(lambda _: next(answers, KEPT), write=written.append)
    span, _ = _in_trace()
    with trace.use_span(span):
        buffer.hold(b"raced", {})
    assert [b"raced"] == written
    assert (0, 0) == buffer.held()
