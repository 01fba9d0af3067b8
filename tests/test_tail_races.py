"""Request threads register running roots without the sampler's lock: the tick and flush must
still see every root, and two requests of one trace must still make one decision.

A request's lightweight SERVER span is added to the sampler's running roots with one dict
operation and no lock (the request path must not wait for the tick). What walks those roots
(the tick, a flush) therefore cannot rely on the lock to keep the dict still, nor on its order.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from _tail_support import MS, SECOND, tail_provider
from obskit import _guard
from obskit.tracing.server_span import start_server_span
from obskit.tracing.tail import KEPT, PENDING


@pytest.fixture
def collect_often() -> Iterator[list[Any]]:
    """Every allocation of a tracked object runs a collection; the test adds its callbacks."""
    callbacks: list[Any] = []
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        yield callbacks
    finally:
        gc.set_threshold(*threshold)
        for callback in callbacks:
            gc.callbacks.remove(callback)


def test_a_root_registered_after_a_younger_one_is_promoted_on_time() -> None:
    """A request that read its start time first but registered second is still promoted."""
    tracer, sampler, _ = tail_provider(baseline_ratio=0.0, slow_threshold_ms=100)
    younger = start_server_span(tracer, "GET /b", None, {})
    older = start_server_span(tracer, "GET /a", None, {})
    # Its thread read the clock 50 ms before the other request's, then lost the processor.
    older._start_time = younger._start_time - 50 * MS  # type: ignore[attr-defined]
    now = older._start_time + 120 * MS  # type: ignore[attr-defined]  # past slow; younger not
    assert 1 == sampler.sweep(now=now)
    assert KEPT == sampler.state(older.get_span_context().trace_id)
    assert PENDING == sampler.state(younger.get_span_context().trace_id)
    older.end()
    younger.end()
    assert 2 == sum(sampler.stats()["decisions"].values())


def test_the_tick_walks_running_roots_while_requests_register(
    collect_often: list[Any],
) -> None:
    """Roots registered while the tick walks the running roots break nothing and are kept track of.

    A collection that runs Python code (here a gc callback; in a service, any finalizer) lets
    another request thread register its root in the middle of the walk. On CPython 3.10/3.11 a
    collection can run inside the copy of the dict itself, where ``list(d.items())`` then fails
    with "dictionary changed size during iteration".
    """
    tracer, sampler, _ = tail_provider(baseline_ratio=0.0, slow_threshold_ms=1000)
    roots = [start_server_span(tracer, "GET /", None, {}) for _ in range(3_000)]
    added: list[trace.Span] = []
    sweeping = threading.Event()

    def register_meanwhile(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and sweeping.is_set() and len(added) < 200:
            added.append(start_server_span(tracer, "GET /meanwhile", None, {}))

    collect_often.append(register_meanwhile)
    gc.callbacks.append(register_meanwhile)
    reports_before = dict(_guard.counts())
    sweeping.set()
    promoted = sampler.sweep(now=time.time_ns() + 2 * SECOND)  # every one past slow
    sweeping.clear()
    assert 200 == len(added)  # requests did register while the tick ran
    assert 3_000 <= promoted <= 3_200
    for span in roots + added:
        assert sampler.state(span.get_span_context().trace_id) in (PENDING, KEPT)
        span.end()
    assert 3_200 == sum(sampler.stats()["decisions"].values())
    assert (0, 0, 0) == sampler.buffered()
    assert reports_before == _guard.counts()


def test_flush_decides_roots_registered_while_it_walks_them(collect_often: list[Any]) -> None:
    """A flush walking the running roots while requests register decides each trace once."""
    tracer, sampler, _ = tail_provider(baseline_ratio=1.0)
    roots = [start_server_span(tracer, "GET /", None, {}) for _ in range(3_000)]
    added: list[trace.Span] = []
    flushing = threading.Event()

    def register_meanwhile(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and flushing.is_set() and len(added) < 200:
            added.append(start_server_span(tracer, "GET /meanwhile", None, {}))

    collect_often.append(register_meanwhile)
    gc.callbacks.append(register_meanwhile)
    flushing.set()
    assert sampler.force_flush(5_000)
    flushing.clear()
    assert 200 == len(added)
    for span in roots + added:
        span.end()
    assert 3_200 == sum(sampler.stats()["decisions"].values())
    assert (0, 0, 0) == sampler.buffered()


def test_two_requests_of_one_trace_starting_at_once_make_one_decision() -> None:
    """Concurrent requests sharing an upstream trace (a fan-out) are decided once per trace."""
    tracer, sampler, _ = tail_provider(baseline_ratio=0.0)
    traces, pairs = 400, 2
    barrier = threading.Barrier(pairs)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows

    def request(trace_id: int, span_id: int) -> None:
        upstream = SpanContext(trace_id, span_id, True, TraceFlags(TraceFlags.SAMPLED))
        parent = trace.set_span_in_context(NonRecordingSpan(upstream))
        barrier.wait(timeout=10)
        start_server_span(tracer, "GET /", parent, {}).end()

    try:
        for n in range(traces):
            trace_id = 0x0AF7651916CD43DD8448EB211C80319C + n
            threads = [
                threading.Thread(target=request, args=(trace_id, 1 + k)) for k in range(pairs)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=10)
                assert not thread.is_alive()
    finally:
        sys.setswitchinterval(interval)
    stats = sampler.stats()
    assert traces == sum(stats["decisions"].values())
    assert traces * pairs == stats["spans_out"]["dropped"]
    assert (0, 0, 0) == sampler.buffered()
