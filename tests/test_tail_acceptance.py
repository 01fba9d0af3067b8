"""The two big acceptance runs: 100,000 mixed traces, and a flood of 1,000,000 spans."""

from __future__ import annotations

import gc
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from _tail_support import MS, SECOND, ListSink, attrs
from obskit.tracing.tail import ADJUSTED_COUNT, TailSampler


class SeededIds(IdGenerator):
    """Random ids from a seeded generator, so the run is reproducible."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


def _provider(sampler: TailSampler, seed: int) -> trace.Tracer:
    provider = TracerProvider(sampler=ALWAYS_ON, id_generator=SeededIds(seed))
    provider.add_span_processor(sampler)
    return provider.get_tracer("acceptance")


def test_100k_traces_keep_every_error_and_slow_trace_and_a_fair_baseline() -> None:
    """100k traces of 3-10 spans: errors and slow traces kept whole, baseline 1% +/- 0.2, counts."""
    sink = ListSink()
    sampler = TailSampler(sink, baseline_ratio=0.01, slow_threshold_ms=1000, background=False)
    tracer = _provider(sampler, seed=20261126)
    rng = random.Random(42)
    n_traces = 100_000
    kinds: dict[int, str] = {}
    span_ids: dict[int, set[int]] = {}
    t = 1_700_000_000 * SECOND
    for _ in range(n_traces):
        roll = rng.random()
        kind = "error" if roll < 0.005 else "slow" if roll < 0.010 else "normal"
        n_spans = rng.randint(3, 10)
        root_duration = 2 * SECOND if kind == "slow" else rng.randint(5, 200) * MS
        root = tracer.start_span("root", start_time=t)
        trace_id = root.get_span_context().trace_id
        kinds[trace_id] = kind
        spans = [root]
        for _ in range(n_spans - 1):  # each child under a random earlier span: random depth
            parent = spans[rng.randrange(len(spans))]
            ctx = trace.set_span_in_context(parent)
            spans.append(tracer.start_span("child", context=ctx, start_time=t + MS))
        span_ids[trace_id] = {s.get_span_context().span_id for s in spans}
        if kind == "error":
            spans[rng.randrange(1, len(spans))].set_status(Status(StatusCode.ERROR))
        # One trace in five has a child that outlives its root (a fire-and-forget task).
        outliver = spans.pop(rng.randrange(1, len(spans))) if rng.random() < 0.2 else None
        for span in reversed(spans):  # children end before their parents
            span.end(end_time=t + root_duration)
        if outliver is not None:
            outliver.end(end_time=t + root_duration + 10 * MS)
        t += MS
    assert (0, 0, 0) == sampler.buffered()

    exported = sink.by_trace()
    for trace_id, kind in kinds.items():
        if kind != "normal":
            got = {s.context.span_id for s in exported.get(trace_id, [])}
            assert span_ids[trace_id] == got, f"{kind} trace {trace_id:032x} incomplete"
    normal = [tid for tid, kind in kinds.items() if kind == "normal"]
    kept_normal = sum(1 for tid in normal if tid in exported)
    share = kept_normal / len(normal)
    assert 0.008 <= share <= 0.012, share
    for trace_id in exported:  # every kept trace is complete, baseline ones too
        assert span_ids[trace_id] == {s.context.span_id for s in exported[trace_id]}
    roots = [s for spans in exported.values() for s in spans if s.parent is None]
    estimate = sum(attrs(root)[ADJUSTED_COUNT] for root in roots)
    assert abs(estimate - n_traces) <= 0.03 * n_traces, estimate


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sdk_like_span(
    trace_id: int, span_id: int, parent: SpanContext | None, attributes: dict[str, Any], now: int
) -> ReadableSpan:
    """A ReadableSpan built of the same parts the SDK hands to ``on_end`` (bounded containers)."""
    bounded = BoundedAttributes(128, None, immutable=True)
    bounded._dict = attributes  # the same container, without re-validating known-good values
    return ReadableSpan(
        "chunk",
        SpanContext(trace_id, span_id, False, _FLAGS),
        parent,
        _RESOURCE,
        bounded,
        BoundedList(128),
        BoundedList(128),
        start_time=now,
        end_time=now + 1_000,
    )


class FloodSink(ListSink):
    """Keeps the spans of the traces under watch (the error traces), counts the rest."""

    def __init__(self, watched: set[int]) -> None:
        super().__init__()
        self.watched = watched
        self.others = 0

    def submit(self, spans: Sequence[ReadableSpan], lane: int) -> None:
        mine = [s for s in spans if s.context.trace_id in self.watched]
        self.others += len(spans) - len(mine)
        super().submit(mine, lane)


_FLAGS = TraceFlags(1)
_RESOURCE = Resource.create({"service.name": "flood"})


def test_flood_of_1m_spans_stays_under_its_caps_and_keeps_errors() -> None:
    """1M spans in never-ending traces: bytes under the cap, memory under cap + 20%, errors kept.

    The flood's spans are fed to the processor directly (the SDK would take minutes on this
    machine); they are built of the same bounded containers the SDK passes to ``on_end``. The
    error traces arriving during the flood go through the SDK.
    """
    cap = 24 * 1024 * 1024
    error_traces: dict[int, int] = {}
    sink = FloodSink(set())
    sampler = TailSampler(
        sink,
        baseline_ratio=0.01,
        slow_threshold_ms=3_600_000,
        max_traces=2_000,
        max_buffer_bytes=cap,
        background=False,
    )
    tracer = _provider(sampler, seed=7)
    rng = random.Random(5)
    total, per_trace, error_every = 1_000_000, 50, 20_000
    for _ in range(2_000):  # warm the allocator so the baseline is not first-use cost
        tracer.start_span("warm").end()
    sink.others = 0
    before = sampler.stats()
    # The test process's own heap (pytest, every imported module) is not what is measured:
    # freezing it keeps the collector's full passes over it out of the flood's time.
    gc.collect()
    gc.freeze()
    start_rss = peak_rss = _rss_bytes()
    peak_bytes = flood_traces = sent = 0
    parent: SpanContext | None = None
    trace_id = 0
    try:
        deadline = time.monotonic() + 120  # a bound on the loop, not an assertion on speed
        while sent < total and time.monotonic() < deadline:
            if sent % per_trace == 0:  # a new trace whose root starts and never ends
                trace_id = rng.getrandbits(128)
                now = time.time_ns()
                root = _sdk_like_span(trace_id, sent + 1, None, {}, now)
                sampler.on_start(root)  # type: ignore[arg-type]  # reads what both span types have
                parent = root.context
                flood_traces += 1
            child = _sdk_like_span(trace_id, (1 << 40) + sent, parent, {"n": sent}, now)
            sampler.on_start(child)  # type: ignore[arg-type]
            sampler.on_end(child)
            sent += 1
            if sent % error_every == 0:
                err_root = tracer.start_span("request")
                sink.watched.add(err_root.get_span_context().trace_id)
                err_ctx = trace.set_span_in_context(err_root)
                tracer.start_span("ok", context=err_ctx).end()
                bad = tracer.start_span("fails", context=err_ctx)
                bad.set_status(Status(StatusCode.ERROR))
                bad.end()
                err_root.end()
                error_traces[err_root.get_span_context().trace_id] = 3
            if sent % 10_000 == 0:
                peak_bytes = max(peak_bytes, sampler.buffered()[2])
                peak_rss = max(peak_rss, _rss_bytes())
    finally:
        gc.unfreeze()
    assert total == sent, f"flood stopped at {sent} spans"

    traces, spans, held = sampler.buffered()
    assert peak_bytes <= cap
    assert held <= cap
    assert peak_rss - start_rss <= cap * 1.2, (peak_rss - start_rss) / cap
    exported = sink.by_trace()
    for err_id, n in error_traces.items():
        assert n == len(exported.get(err_id, ())), "an error trace was lost in the flood"
    stats = sampler.stats()
    evictions = sum(stats["evictions"].values())
    overflow = sum(n for (_, _, trig), n in stats["decisions"].items() if trig == "overflow")
    assert evictions == overflow > 0
    # Every flood trace is still buffered or was decided by a counted eviction.
    assert flood_traces == traces + evictions
    # Every flood span is buffered, exported, or counted as dropped: none vanished.
    out = {k: stats["spans_out"][k] - before["spans_out"][k] for k in ("kept", "dropped")}
    flood_kept = out["kept"] - sum(error_traces.values())
    assert flood_kept == sink.others
    assert sent == spans + flood_kept + out["dropped"]
