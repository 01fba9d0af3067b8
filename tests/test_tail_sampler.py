"""The tail sampler's decisions, driven through a real SDK TracerProvider."""

from __future__ import annotations

import random
import time

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags, TraceState

from _tail_support import MS, SECOND, attrs, tail_provider
from obskit import _guard
from obskit.tracing import policies
from obskit.tracing.server_span import start_server_span
from obskit.tracing.tail import ADJUSTED_COUNT, KEPT, LATE, PENDING, RULE, TRIGGER


def _remote_parent(trace_id: int, state: TraceState | None = None) -> trace.Context:
    parent = trace.SpanContext(
        trace_id, 0x1234, is_remote=True, trace_flags=TraceFlags(1), trace_state=state
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


class TestThresholds:
    def test_threshold_encoding_matches_the_specification_examples(self) -> None:
        """1% encodes as th:fd70a4, 25% as th:c, 100% as th:0 (trailing zeros trimmed)."""
        assert "fd70a4" == policies.encode_threshold(policies.threshold_for(0.01))
        assert "c" == policies.encode_threshold(policies.threshold_for(0.25))
        assert "0" == policies.encode_threshold(policies.threshold_for(1.0))

    def test_adjusted_count_is_the_inverse_probability(self) -> None:
        """A 1% threshold stands for 100 traces, a 25% one for 4."""
        assert 100.0 == pytest.approx(policies.adjusted_count(policies.threshold_for(0.01)), 1e-6)
        assert 4.0 == policies.adjusted_count(policies.threshold_for(0.25))

    def test_baseline_is_consistent_with_the_trace_id_randomness(self) -> None:
        """A trace is kept by the baseline exactly when its low 56 bits reach the threshold."""
        tracer, _, sink = tail_provider(baseline_ratio=0.3)
        threshold = policies.threshold_for(0.3)
        rng = random.Random(7)
        expected = set()
        for _ in range(300):
            trace_id = rng.getrandbits(128)
            if trace_id & ((1 << 56) - 1) >= threshold:
                expected.add(trace_id)
            tracer.start_span("root", context=_remote_parent(trace_id)).end()
        assert expected == set(sink.by_trace())


class TestRules:
    def test_error_in_a_child_keeps_the_whole_trace_with_weight_one(self) -> None:
        """An ERROR child keeps every local span of its trace: rule error, weight 1, th:0."""
        tracer, _, sink = tail_provider(baseline_ratio=0.0)
        with tracer.start_as_current_span("root"):
            with tracer.start_as_current_span("a"):
                pass
            with tracer.start_as_current_span("b") as b:
                b.set_status(Status(StatusCode.ERROR))
        assert {"root", "a", "b"} == {span.name for span in sink.spans}
        for span in sink.spans:
            assert "error" == attrs(span)[RULE]
            assert 1.0 == attrs(span)[ADJUSTED_COUNT]
            assert "th:0" == span.context.trace_state.get("ot")

    def test_recorded_exception_without_status_keeps_the_trace(self) -> None:
        """A recorded exception counts as an error even when the status was left unset."""
        tracer, _, sink = tail_provider(baseline_ratio=0.0)
        with tracer.start_as_current_span("root"):
            span = tracer.start_span("call", set_status_on_exception=False)
            span.record_exception(ValueError("boom"))
            span.end()
        assert 2 == len(sink.spans)

    def test_server_5xx_keeps_and_4xx_does_not(self) -> None:
        """A SERVER span with status code 503 keeps its trace; 404 leaves it to the baseline."""
        tracer, _, sink = tail_provider(baseline_ratio=0.0)
        for code in (503, 404):
            span = tracer.start_span("GET /x", kind=SpanKind.SERVER)
            span.set_attribute("http.response.status_code", code)
            span.end()
        assert [503] == [attrs(s)["http.response.status_code"] for s in sink.spans]
        assert "server_error" == attrs(sink.spans[0])[RULE]

    def test_slow_span_keeps_the_trace(self) -> None:
        """A span longer than the threshold keeps the trace, decided when it ends."""
        tracer, _, sink = tail_provider(baseline_ratio=0.0, slow_threshold_ms=100)
        root = tracer.start_span("root", start_time=10 * SECOND)
        ctx = trace.set_span_in_context(root)
        db = tracer.start_span("db", context=ctx, start_time=10 * SECOND)
        db.end(end_time=10 * SECOND + 150 * MS)
        assert ["db"] == [s.name for s in sink.spans]
        assert ("slow", "span_end") == (attrs(sink.spans[0])[RULE], attrs(sink.spans[0])[TRIGGER])
        root.end(end_time=10 * SECOND + 200 * MS)
        assert ["db", "root"] == [s.name for s in sink.spans]

    def test_attribute_rule_and_user_predicate_keep(self) -> None:
        """keep_rules match attribute values as text; keep_if sees each ended span."""
        tracer, _, sink = tail_provider(
            baseline_ratio=0.0,
            keep_rules=(("tenant_id", "acme"),),
            keep_if=lambda span: span.name == "special",
        )
        tracer.start_span("t", attributes={"tenant_id": "acme"}).end()
        tracer.start_span("t", attributes={"tenant_id": "other"}).end()
        tracer.start_span("special").end()
        assert ["attribute", "keep_if"] == [attrs(s)[RULE] for s in sink.spans]

    def test_per_route_slowness_keeps_traces_above_the_live_p99(self) -> None:
        """With slow_per_route, a root slower than its route's recent p99 is kept as slow."""
        tracer, _, sink = tail_provider(baseline_ratio=0.0, slow_per_route=True)
        for i in range(1024):
            span = tracer.start_span("GET", attributes={"http.route": "/a"}, start_time=SECOND)
            span.end(end_time=SECOND + (10 + i % 10) * MS)
        assert [] == sink.spans
        span = tracer.start_span("GET", attributes={"http.route": "/a"}, start_time=SECOND)
        span.end(end_time=SECOND + 50 * MS)
        assert [("slow", "root_end")] == [(attrs(s)[RULE], attrs(s)[TRIGGER]) for s in sink.spans]

    def test_baseline_keep_carries_its_threshold_and_weight(self) -> None:
        """A baseline keep carries ot=th:<T> and the adjusted count 1/p, in the baseline lane."""
        tracer, _, sink = tail_provider(baseline_ratio=0.25)
        rng = random.Random(3)
        while not sink.spans:
            tracer.start_span("root", context=_remote_parent(rng.getrandbits(128))).end()
        span = sink.spans[0]
        assert "th:c" == span.context.trace_state.get("ot")
        assert 4.0 == attrs(span)[ADJUSTED_COUNT]
        assert ["baseline"] == sink.lanes

    def test_failing_user_predicate_is_counted_and_ignored(self) -> None:
        """A keep_if that raises never reaches the application; it is counted, the span buffered."""

        def broken(span: object) -> bool:
            raise RuntimeError("bug in the predicate")

        tracer, _, sink = tail_provider(baseline_ratio=1.0, keep_if=broken)
        previous = _guard.set_strict(False)
        try:
            tracer.start_span("op").end()
        finally:
            _guard.set_strict(previous)
        assert ["baseline"] == [attrs(s)[RULE] for s in sink.spans]
        assert 1 == _guard.counts()["tracing.keep_if"]


class TestLocalRoot:
    def test_root_with_remote_parent_is_the_local_root(self) -> None:
        """Spans are buffered until the local root ends, even when that root has a remote parent."""
        tracer, sampler, sink = tail_provider(baseline_ratio=1.0)
        root = tracer.start_span("server", context=_remote_parent(0xABC << 64 | 0xFFFFFFFFFFFFFF))
        tracer.start_span("child", context=trace.set_span_in_context(root)).end()
        assert ([], 1) == (sink.spans, sampler.buffered()[0])
        root.end()
        assert ["child", "server"] == [s.name for s in sink.spans]

    def test_upstream_threshold_is_only_raised(self) -> None:
        """An upstream ot=th is kept on certain keeps and raised, never lowered, by the baseline."""
        tracer, _, sink = tail_provider(baseline_ratio=1.0)
        upstream = TraceState([("ot", "th:8")])  # upstream sampled at 50%
        tracer.start_span("root", context=_remote_parent((1 << 56) - 1, upstream)).end()
        assert "th:8" == sink.spans[0].context.trace_state.get("ot")
        assert 2.0 == attrs(sink.spans[0])[ADJUSTED_COUNT]


class TestLateSpans:
    def test_child_outliving_its_root_is_part_of_the_decision(self) -> None:
        """A child ending shortly after its root is exported with the rest of a kept trace."""
        tracer, _, sink = tail_provider(baseline_ratio=0.0)
        root = tracer.start_span("root")
        child = tracer.start_span("child", context=trace.set_span_in_context(root))
        root.end()
        child.set_status(Status(StatusCode.ERROR))
        child.end()
        assert {"root", "child"} == {s.name for s in sink.spans}

    @pytest.mark.parametrize("ratio", [0.0, 1.0])
    def test_child_ending_5s_after_its_root_follows_the_root_decision(self, ratio: float) -> None:
        """After the grace, the root's decision stands and a child ending 5 s later follows it."""
        tracer, sampler, sink = tail_provider(
            baseline_ratio=ratio, child_grace_s=2.0, slow_threshold_ms=60_000
        )
        t0 = 1_000 * SECOND
        root = tracer.start_span("root", start_time=t0)
        child = tracer.start_span("child", context=trace.set_span_in_context(root), start_time=t0)
        root.end(end_time=t0 + 10 * MS)
        assert 0 == sampler.sweep(now=t0 + 1 * SECOND)  # within the grace: still waiting
        assert 1 == sampler.sweep(now=t0 + 3 * SECOND)
        child.end(end_time=t0 + 5 * SECOND + 10 * MS)
        names = sorted(s.name for s in sink.spans)
        assert (["child", "root"] if ratio else []) == names
        assert {"kept" if ratio else "dropped": 1} == sampler.stats()["late"]

    def test_late_error_in_a_dropped_trace_is_exported_and_flagged(self) -> None:
        """A late error after a drop is still exported, flagged late, and counted as rescued."""
        tracer, sampler, sink = tail_provider(baseline_ratio=0.0, child_grace_s=0.1)
        t0 = 1_000 * SECOND
        root = tracer.start_span("root", start_time=t0)
        child = tracer.start_span("child", context=trace.set_span_in_context(root), start_time=t0)
        root.end(end_time=t0 + MS)
        sampler.sweep(now=t0 + SECOND)
        child.set_status(Status(StatusCode.ERROR))
        child.end(end_time=t0 + 2 * SECOND)
        assert ["child"] == [s.name for s in sink.spans]
        assert (True, "late") == (attrs(sink.spans[0])[LATE], attrs(sink.spans[0])[TRIGGER])
        assert 1 == sampler.stats()["late"]["rescued"]


class TestTicks:
    def test_running_trace_past_the_slow_threshold_is_promoted(self) -> None:
        """The tick promotes a trace whose root runs past the threshold: certain to be kept (its
        state is KEPT), it is exported whole when it ends, as one decision."""
        tracer, sampler, sink = tail_provider(baseline_ratio=0.0, slow_threshold_ms=500)
        t0 = 1_000 * SECOND
        root = tracer.start_span("root", start_time=t0)
        trace_id = root.get_span_context().trace_id
        ctx = trace.set_span_in_context(root)
        tracer.start_span("a", context=ctx, start_time=t0).end(end_time=t0 + MS)
        assert PENDING == sampler.state(trace_id)
        assert 1 == sampler.sweep(now=t0 + 600 * MS)
        assert KEPT == sampler.state(trace_id)
        assert [] == sink.spans  # the spans wait for the trace's end
        tracer.start_span("b", context=ctx, start_time=t0).end(end_time=t0 + 700 * MS)
        root.end(end_time=t0 + 800 * MS)
        assert ["a", "b", "root"] == [s.name for s in sink.spans]
        assert {"slow"} == {attrs(s)[RULE] for s in sink.spans}
        assert ["slow"] * 3 == sink.lanes
        assert 1 == sum(sampler.stats()["decisions"].values())

    def test_a_promoted_trace_that_fails_later_is_an_error_trace(self) -> None:
        """A trace promoted as slow whose child fails afterwards is kept whole, with the error
        rule, in the error lane: a burst that makes everything slow cannot demote its errors."""
        tracer, sampler, sink = tail_provider(baseline_ratio=0.0, slow_threshold_ms=500)
        t0 = 1_000 * SECOND
        root = tracer.start_span("root", start_time=t0)
        ctx = trace.set_span_in_context(root)
        tracer.start_span("a", context=ctx, start_time=t0).end(end_time=t0 + MS)
        assert 1 == sampler.sweep(now=t0 + 600 * MS)
        failing = tracer.start_span("b", context=ctx, start_time=t0)
        failing.set_status(Status(StatusCode.ERROR))
        failing.end(end_time=t0 + 700 * MS)
        root.end(end_time=t0 + 800 * MS)
        assert ["a", "b", "root"] == [s.name for s in sink.spans]
        assert ["error"] * 3 == [attrs(s)[RULE] for s in sink.spans]
        assert ["error"] * 3 == sink.lanes

    def test_background_tick_promotes_without_being_called(self) -> None:
        """With the tick thread running, a root past the threshold is promoted on its own."""
        tracer, sampler, sink = tail_provider(
            baseline_ratio=0.0, slow_threshold_ms=50, background=True, tick_s=0.02
        )
        root = tracer.start_span("running")
        trace_id = root.get_span_context().trace_id
        tracer.start_span("done", context=trace.set_span_in_context(root)).end()
        deadline = time.monotonic() + 10
        while sampler.state(trace_id) != KEPT and time.monotonic() < deadline:
            time.sleep(0.01)
        assert KEPT == sampler.state(trace_id)
        root.end()
        assert ["done", "running"] == [s.name for s in sink.spans]
        assert {"slow"} == {attrs(s)[RULE] for s in sink.spans}
        sampler.shutdown(1.0)

    def test_abandoned_trace_is_decided_at_its_timeout(self) -> None:
        """A trace whose root never ends is decided by the timeout (dropped with baseline 0)."""
        tracer, sampler, _ = tail_provider(
            baseline_ratio=0.0, slow_threshold_ms=3_600_000, trace_timeout_s=5
        )
        t0 = 1_000 * SECOND
        root = tracer.start_span("root", start_time=t0)
        tracer.start_span("a", context=trace.set_span_in_context(root), start_time=t0).end(
            end_time=t0 + MS
        )
        assert 0 == sampler.sweep(now=t0 + 4 * SECOND)
        assert 1 == sampler.sweep(now=t0 + 6 * SECOND)
        assert {(False, "none", "timeout"): 1} == sampler.stats()["decisions"]
        assert (0, 0, 0) == sampler.buffered()


class TestCaps:
    def test_trace_cap_decides_the_oldest_and_counts_it(self) -> None:
        """Past max_traces the oldest undecided trace is decided and counted as an eviction."""
        tracer, sampler, _ = tail_provider(baseline_ratio=0.0, max_traces=10)
        for _ in range(15):
            tracer.start_span("never-ends")
        assert 10 == sampler.buffered()[0]
        assert 5 == sampler.stats()["evictions"]["traces"]

    def test_span_cap_forces_a_decision_for_that_trace(self) -> None:
        """A trace reaching max_spans_per_trace is decided; its later spans follow the decision."""
        tracer, sampler, sink = tail_provider(baseline_ratio=1.0, max_spans_per_trace=5)
        root = tracer.start_span("root")
        ctx = trace.set_span_in_context(root)
        for _ in range(8):
            tracer.start_span("child", context=ctx).end()
        root.end()
        assert 9 == len(sink.spans)
        assert {"spans": 1} == sampler.stats()["evictions"]

    def test_byte_cap_holds_and_errors_are_still_kept(self) -> None:
        """Buffered bytes never pass the cap; an error trace arriving meanwhile is kept whole."""
        tracer, sampler, sink = tail_provider(baseline_ratio=0.0, max_buffer_bytes=200_000)
        roots = [tracer.start_span("never-ends") for _ in range(20)]
        for i in range(2_000):
            ctx = trace.set_span_in_context(roots[i % 20])
            tracer.start_span("child", context=ctx).end()
            assert sampler.buffered()[2] <= 200_000
        root = tracer.start_span("err-root")
        child = tracer.start_span("c", context=trace.set_span_in_context(root))
        child.set_status(Status(StatusCode.ERROR))
        child.end()
        root.end()
        assert {"c", "err-root"} == {s.name for s in sink.spans}
        assert sampler.stats()["evictions"]["bytes"] > 0


class TestExemplarGate:
    def test_exemplar_applied_only_when_the_trace_is_kept(self) -> None:
        """An offered exemplar waits for its trace: applied on keep, never on drop."""
        tracer, sampler, _ = tail_provider(baseline_ratio=0.0)
        applied: list[str] = []
        for name, error in (("kept", True), ("dropped", False)):
            root = tracer.start_span(name)
            sampler.offer(root.get_span_context().trace_id, lambda name=name: applied.append(name))
            if error:
                root.set_status(Status(StatusCode.ERROR))
            root.end()
        assert ["kept"] == applied
        assert {"applied": 1, "discarded": 1, "overflow": 0} == sampler.stats()["exemplars"]

    def test_exemplar_for_a_decided_trace_is_settled_at_once(self) -> None:
        """An offer after the decision applies for a kept trace and is discarded otherwise."""
        tracer, sampler, _ = tail_provider(baseline_ratio=0.0)
        span = tracer.start_span("r")
        span.set_status(Status(StatusCode.ERROR))
        span.end()
        applied: list[int] = []
        sampler.offer(span.get_span_context().trace_id, lambda: applied.append(1))
        sampler.offer(12345, lambda: applied.append(2))
        assert [1] == applied

    def test_wants_no_exemplar_only_for_a_trace_known_dropped(self) -> None:
        """wants() is False (and counts the exemplar as discarded) only once the trace is
        dropped; running, kept and unknown traces still get their offer."""
        tracer, sampler, _ = tail_provider(baseline_ratio=0.0)
        running = tracer.start_span("running")
        kept = tracer.start_span("kept")
        kept.set_status(Status(StatusCode.ERROR))
        kept.end()
        dropped = tracer.start_span("dropped")
        dropped.end()
        ids = [s.get_span_context().trace_id for s in (running, kept, dropped)]
        assert [True, True, False, True] == [sampler.wants(t) for t in [*ids, 12345]]
        assert 1 == sampler.stats()["exemplars"]["discarded"]
        running.end()


class TestFlush:
    def test_force_flush_decides_everything_pending(self) -> None:
        """force_flush leaves nothing buffered and keeps running traces per the baseline."""
        tracer, sampler, sink = tail_provider(baseline_ratio=1.0)
        root = tracer.start_span("running")
        tracer.start_span("done", context=trace.set_span_in_context(root)).end()
        assert sampler.force_flush(1_000)
        assert (0, 0, 0) == sampler.buffered()
        assert [("done", "flush")] == [(s.name, attrs(s)[TRIGGER]) for s in sink.spans]


class TestOneDecisionPerTrace:
    """``obskit_tail_decisions_total`` counts each trace once, whichever path decided it."""

    @staticmethod
    def _requests(tracer: trace.Tracer, n: int) -> list[tuple[trace.Span, trace.Span]]:
        """``n`` running requests (lightweight SERVER roots), each with a running child."""
        requests = []
        for _ in range(n):
            root = start_server_span(tracer, "GET /", None, {})
            child = tracer.start_span("db", context=trace.set_span_in_context(root))
            requests.append((root, child))
        return requests

    def test_promoted_running_requests_with_children_count_once(self) -> None:
        """6,000 requests with a child, promoted while running, then ended: 6,000 decisions."""
        tracer, sampler, sink = tail_provider(baseline_ratio=0.0, slow_threshold_ms=1000)
        requests = self._requests(tracer, 6_000)
        sampler.sweep(now=time.time_ns() + 2 * SECOND)  # every one past the slow threshold
        for root, child in requests:
            child.end()
            root.end()
        decisions = sampler.stats()["decisions"]
        assert 6_000 == sum(decisions.values())
        assert 12_000 == len(sink.spans)  # all kept as slow
        assert (0, 0, 0) == sampler.buffered()

    def test_flush_during_requests_with_children_counts_once(self) -> None:
        """A flush while requests (joined to their children's buffer) run: one decision each."""
        tracer, sampler, _ = tail_provider(baseline_ratio=1.0)
        requests = self._requests(tracer, 100)
        sampler.force_flush(1_000)
        for root, child in requests:
            child.end()
            root.end()
        assert 100 == sum(sampler.stats()["decisions"].values())

    def test_lone_requests_promoted_and_timed_out_count_once(self) -> None:
        """Requests without children promoted by the tick, one of them never ending: one each."""
        tracer, sampler, _ = tail_provider(
            baseline_ratio=0.0, slow_threshold_ms=1000, trace_timeout_s=5
        )
        roots = [start_server_span(tracer, "GET /", None, {}) for _ in range(10)]
        now = time.time_ns()
        sampler.sweep(now=now + 2 * SECOND)
        for root in roots[:9]:
            root.end()
        sampler.sweep(now=now + 10 * SECOND)  # the tenth is abandoned
        assert 10 == sum(sampler.stats()["decisions"].values())
        assert (0, 0, 0) == sampler.buffered()

    def test_a_rescue_is_not_a_second_decision(self) -> None:
        """A late error rescuing a dropped trace is counted as a rescue, not as a decision."""
        tracer, sampler, _ = tail_provider(baseline_ratio=0.0)
        root = tracer.start_span("root")
        child = tracer.start_span("late", context=trace.set_span_in_context(root))
        root.end()
        sampler.sweep(now=time.time_ns() + 10 * SECOND)  # the grace is over: dropped
        child.set_status(Status(StatusCode.ERROR))
        child.end()
        stats = sampler.stats()
        assert 1 == sum(stats["decisions"].values())
        assert 1 == stats["late"]["rescued"]
