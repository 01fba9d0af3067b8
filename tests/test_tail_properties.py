"""Properties of the tail sampler over random interleavings of many traces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from _tail_support import attrs, tail_provider
from obskit.tracing.tail import RULE

# A trace: its spans' parents (index of an earlier span, the first is the root) and which fail.
_trace = st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.tuples(
        st.tuples(*[st.integers(min_value=0, max_value=max(0, i - 1)) for i in range(n)]),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(
    traces=st.lists(_trace, min_size=1, max_size=12),
    order_seed=st.randoms(use_true_random=False),
    ratio=st.sampled_from([0.0, 0.5, 1.0]),
    max_traces=st.sampled_from([10, 3]),
)
def test_no_error_is_ever_lost_and_no_span_vanishes(
    traces: list[tuple[tuple[int, ...], list[bool]]],
    order_seed: object,
    ratio: float,
    max_traces: int,
) -> None:
    """Whatever the interleaving or caps: every error span is exported, every span is counted."""
    tracer, sampler, sink = tail_provider(baseline_ratio=ratio, max_traces=max_traces)
    open_spans = []
    errors = set()
    error_traces: dict[int, set[int]] = {}
    for parents, failing in traces:
        spans: list[trace.Span] = []
        for i, parent in enumerate(parents):
            ctx = trace.set_span_in_context(spans[parent]) if i else None
            span = tracer.start_span(f"s{i}", context=ctx)
            if failing[i]:
                span.set_status(Status(StatusCode.ERROR))
                errors.add(span.get_span_context().span_id)
            spans.append(span)
        open_spans.extend(spans)
        if any(failing):
            ids = {s.get_span_context().span_id for s in spans}
            error_traces[spans[0].get_span_context().trace_id] = ids
    order_seed.shuffle(open_spans)  # type: ignore[attr-defined]
    for span in open_spans:  # any order: children may end long after their root
        span.end()
    assert sampler.force_flush(1_000)

    exported = {s.context.span_id for s in sink.spans}
    assert errors <= exported
    stats = sampler.stats()
    assert (0, 0, 0) == sampler.buffered()
    assert len(open_spans) == stats["spans_out"]["kept"] + stats["spans_out"]["dropped"]
    assert len(sink.spans) == stats["spans_out"]["kept"]
    by_trace = sink.by_trace()
    if not any(stats["evictions"].values()):
        # Nothing forced an early decision: every trace with an error is exported whole.
        for trace_id, ids in error_traces.items():
            assert ids == {s.context.span_id for s in by_trace[trace_id]}
    for spans in by_trace.values():
        assert len({s.context.span_id for s in spans}) == len(spans)  # never exported twice
        if ratio == 1.0:
            assert all(attrs(s)[RULE] in ("baseline", "error") for s in spans)


def test_threads_sharing_one_sampler_lose_no_error_trace() -> None:
    """Four threads tracing at once (with small caps forcing evictions): every error kept whole."""
    import threading

    tracer, sampler, sink = tail_provider(baseline_ratio=0.0, max_traces=50, background=True)
    error_spans: dict[int, set[int]] = {}
    lock = threading.Lock()

    def work(seed: int) -> None:
        for i in range(400):
            with tracer.start_as_current_span("root") as root:
                ids = {root.get_span_context().span_id}
                for j in range(3):
                    with tracer.start_as_current_span(f"child{j}") as child:
                        ids.add(child.get_span_context().span_id)
                        if (i + seed) % 50 == 0 and j == 2:
                            child.set_status(Status(StatusCode.ERROR))
            if (i + seed) % 50 == 0:
                with lock:
                    error_spans[root.get_span_context().trace_id] = ids

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sampler.force_flush(5_000)
    exported = sink.by_trace()
    assert 32 == len(error_spans)
    for trace_id, ids in error_spans.items():
        assert ids == {s.context.span_id for s in exported[trace_id]}
    stats = sampler.stats()
    assert 4 * 400 * 4 == stats["spans_out"]["kept"] + stats["spans_out"]["dropped"]
    sampler.shutdown(1.0)
