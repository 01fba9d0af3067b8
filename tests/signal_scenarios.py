"""``obskit.shutdown()`` from a SIGTERM handler: run as a script, one scenario per process.

``python signal_scenarios.py <scenario> <runs>``: each run initialises obskit, ends an error
trace (kept, not yet exported: the exporter records what it gets), then raises SIGTERM while the
main thread is inside obskit. The handler calls ``obskit.shutdown(timeout=TIMEOUT_S)``, notes how
long it took and stops the main thread's work. Scenarios:

- ``random``: the main thread makes spans (SERVER roots and SDK children, errors), debug lines
  held for their traces, RED calls and label sets without pause; another thread sends SIGTERM at
  a random moment.
- ``held:<lock>``: the main thread holds one of the locks shutdown needs (the tail sampler's, the
  export lanes', the log buffer's, the guard's, the runtime's, the registry's) when the signal
  arrives, as it would when interrupted in the middle of that lock's work.

A handler that never returns is caught by ``faulthandler``, which dumps every thread and exits
the process (1). The last line printed is a JSON summary: the longest shutdown, and for how many
runs the error trace reached the exporter by the shutdown's deadline once the lock was let go.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry

import obskit
from obskit import _closing, _guard, _runtime
from obskit.tracing import api as tracing_api
from obskit.tracing.server_span import start_server_span

TIMEOUT_S = 1.0
HANG_S = 15.0  # far past any deadline: the handler is stuck


class Recorder(SpanExporter):
    """Keeps the names of the spans it exports."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.names.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _start(exporter: Recorder) -> Any:
    obskit.init(
        service_name="signals",
        span_exporter=exporter,
        baseline_ratio=0.0,
        log_level="info",
        log_buffer_level="debug",
        log_stream="stderr",
        collectors="none",
        registry=CollectorRegistry(),
    )
    runtime = _runtime.current()
    assert runtime is not None
    return runtime


def _pending_traces() -> None:
    """Two traces that only a shutdown gets out: an error trace kept and queued for export (the
    lanes send it within a second, or at the flush), and a trace still running, buffered,
    whose root started 5 s ago: the shutdown decides it (kept, as slow) and exports it."""
    tracer = tracing_api.get_tracer()
    with tracer.start_as_current_span("failed-root"), tracer.start_as_current_span("failed") as s:
        s.set_status(Status(StatusCode.ERROR))
    root = tracer.start_span("pending-root", start_time=time.time_ns() - 5_000_000_000)
    with trace.use_span(root, end_on_exit=False), tracer.start_as_current_span("pending-child"):
        pass  # the root is left running


def _work(stop: threading.Event) -> None:
    """Spans, held lines, RED calls and label sets, without pause, until the handler stops it."""
    log = obskit.get_logger("signals")
    n = 0
    deadline = time.monotonic() + HANG_S
    while not stop.is_set() and time.monotonic() < deadline:
        n += 1
        tracer = tracing_api.get_tracer()
        root = start_server_span(tracer, "GET /work", None, {"http.route": "/work"})
        with trace.use_span(root, end_on_exit=True):
            log.debug("held for its trace", n=n)
            with tracer.start_as_current_span("child") as span:
                if n % 7 == 0:
                    span.set_status(Status(StatusCode.ERROR))
            _red_call(n)


@obskit.red(name="signals.call")
def _red_call(n: int) -> int:
    return n


def _locks_of(runtime: Any) -> dict[str, tuple[AbstractContextManager[Any], Callable[[], Any]]]:
    """Each lock shutdown needs, with a view of what it guards (which must not change while the
    interrupted thread holds it: the handler may not do that lock's work under it)."""
    tracing = runtime.components["tracing"]
    sampler, lanes, buffer = tracing.sampler, tracing.lanes, tracing.log_buffer
    return {
        "sampler": (
            sampler._lock,
            lambda: (dict(sampler._buffer.pending), sampler.stats()["decisions"]),
        ),
        "lanes": (lanes._cond, lambda: [len(q) for q in lanes._queues]),
        "log_buffer": (buffer._lock, lambda: dict(buffer.counts)),
        "guard": (_guard._lock, lambda: None),
        "runtime": (_runtime._lock, lambda: None),
        "registry": (runtime.registry._lock, lambda: None),
    }


@contextmanager
def _handler(calls: list[tuple[float, float]], stop: threading.Event) -> Iterator[None]:
    # (An exception raised from a handler can land in a weakref callback, which ignores it:
    # the handler stops the work with an event instead.)
    def on_sigterm(signum: int, frame: Any) -> None:
        started = time.monotonic()
        obskit.shutdown(timeout=TIMEOUT_S)
        calls.append((started, time.monotonic() - started))
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_run(scenario: str) -> tuple[float, bool, bool]:
    """One shutdown from a signal handler: (its duration, the pending traces exported by its
    deadline, nothing guarded by a held lock changed under it)."""
    exporter = Recorder()
    runtime = _start(exporter)
    _pending_traces()
    calls: list[tuple[float, float]] = []
    stop = threading.Event()
    untouched = True
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        if scenario == "random":
            with _handler(calls, stop):
                delay = random.uniform(0.01, 0.2)
                timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM))
                timer.start()
                _work(stop)
                timer.cancel()
        else:
            lock, guarded = _locks_of(runtime)[scenario.split(":", 1)[1]]
            with _handler(calls, stop), lock:
                before = guarded()
                signal.raise_signal(signal.SIGTERM)  # the handler runs here, under the lock
                untouched = before == guarded()
        _closing.wait()  # the work the handler could not wait for, by its deadline
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert calls, "the handler never ran"
    (signalled, duration), *_ = calls
    in_time = time.monotonic() - signalled <= TIMEOUT_S + 0.5
    exported = {"failed", "pending-child"} <= set(exporter.names)
    return duration, in_time and exported, untouched


def main(scenario: str, runs: int) -> dict[str, Any]:
    results = [one_run(scenario) for _ in range(runs)]
    return {
        "scenario": scenario,
        "runs": runs,
        "longest_s": max(duration for duration, _, _ in results),
        "exported": sum(exported for _, exported, _ in results),
        "untouched": sum(untouched for _, _, untouched in results),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
