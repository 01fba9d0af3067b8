"""@obskit.red against a bare call, hand-written prometheus-client code and autometrics; scrapes.

Usage: ``.venv/bin/python benchmarks/bench_red.py`` (about 40 s). autometrics pins an old
prometheus-client, so it is not in the ``dev`` extra; install it next to the current one with
``.venv/bin/pip install --no-deps autometrics==1.0.0 pydantic python-dotenv
opentelemetry-exporter-prometheus`` (its column is skipped when it is missing).

Part 1, per call: each variant wraps the same trivial function (metrics only, no span) and is timed
in batches; the variants are interleaved round after round and the median per-call time of each
is kept, so a busy machine slows all of them alike. "Added" is the variant minus the bare call.

Part 2, per scrape: the same 1,000 series (1,000 counters; then 1,000 histogram series of 16
buckets each) rendered to the text format by prometheus-client from obskit's store and from
prometheus-client's own metrics.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

import obskit
from obskit.metrics._store import Store
from obskit.metrics.red import FUNCTION_BUCKETS

CALLS_PER_BATCH = 20_000
ROUNDS = 15
TIME_BUDGET_S = 40.0


def work(x: int) -> int:
    return x + 1


def build_variants() -> dict[str, Callable[[int], int]]:
    variants: dict[str, Callable[[int], int]] = {"bare call": work}

    obskit.init(
        registry=CollectorRegistry(),
        tracing=False,
        collectors="none",
        configure_logging=False,
        service_name="bench",
    )
    variants["obskit @red"] = obskit.red(work)

    registry = CollectorRegistry()
    calls = Counter("fn_calls", "Calls.", ["function", "module", "result"], registry=registry)
    duration = Histogram(
        "fn_duration_seconds",
        "Duration.",
        ["function", "module"],
        buckets=FUNCTION_BUCKETS,
        registry=registry,
    )

    def handwritten(x: int) -> int:
        start = perf_counter()
        try:
            result = work(x)
        except Exception:
            calls.labels("work", __name__, "error").inc()
            duration.labels("work", __name__).observe(perf_counter() - start)
            raise
        calls.labels("work", __name__, "ok").inc()
        duration.labels("work", __name__).observe(perf_counter() - start)
        return result

    variants["prometheus-client, .labels() per call"] = handwritten

    ok_child = calls.labels("work", __name__, "ok")
    duration_child = duration.labels("work", __name__)

    def handwritten_cached(x: int) -> int:
        start = perf_counter()
        result = work(x)
        ok_child.inc()
        duration_child.observe(perf_counter() - start)
        return result

    variants["prometheus-client, children cached by hand"] = handwritten_cached

    try:
        from autometrics import autometrics
        from autometrics import init as autometrics_init
    except ImportError:
        print("autometrics not installed: its column is skipped (see the module docstring)")
    else:
        autometrics_init(tracker="prometheus", enable_exemplars=False)
        variants["autometrics"] = autometrics(work)
    return variants


def time_batch(fn: Callable[[int], int]) -> float:
    start = perf_counter()
    for i in range(CALLS_PER_BATCH):
        fn(i)
    return (perf_counter() - start) / CALLS_PER_BATCH


def bench_calls() -> dict[str, float]:
    variants = build_variants()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    deadline = time.monotonic() + TIME_BUDGET_S * 0.6
    for fn in variants.values():  # warm up: first-call binding, caches
        time_batch(fn)
    gc.disable()
    try:
        for _ in range(ROUNDS):
            for name, fn in variants.items():
                samples[name].append(time_batch(fn))
            if time.monotonic() > deadline:
                break
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_scrape() -> list[tuple[str, float, float]]:
    rows = []
    for kind in ("counter", "histogram"):
        ours, theirs = CollectorRegistry(), CollectorRegistry()
        store = Store()
        ours.register(store)
        if kind == "counter":
            family = store.counter("things", "Things.", ["route"])
            peer = Counter("things", "Things.", ["route"], registry=theirs)
            for i in range(1000):
                family.labels(f"/r{i}").inc(i)
                peer.labels(f"/r{i}").inc(i)
        else:
            hist = store.histogram("lat_seconds", "Latency.", ["route"])
            peer_hist = Histogram("lat_seconds", "Latency.", ["route"], registry=theirs)
            for i in range(1000):
                hist.labels(f"/r{i}").observe(i / 1000)
                peer_hist.labels(f"/r{i}").observe(i / 1000)
        a: list[float] = []
        b: list[float] = []
        deadline = time.monotonic() + TIME_BUDGET_S * 0.2
        for _ in range(30):
            start = perf_counter()
            generate_latest(ours)
            a.append(perf_counter() - start)
            start = perf_counter()
            generate_latest(theirs)
            b.append(perf_counter() - start)
            if time.monotonic() > deadline:
                break
        rows.append((f"1,000 {kind} series", statistics.median(a), statistics.median(b)))
    return rows


def main() -> None:
    calls = bench_calls()
    bare = calls["bare call"]
    ours = calls["obskit @red"] - bare
    print(f"Per call ({CALLS_PER_BATCH:,} calls a batch, median of interleaved rounds):")
    print("| variant | ns/call | added ns | obskit added ÷ variant added |")
    print("|---|---:|---:|---:|")
    for name, value in calls.items():
        added = value - bare
        ratio = f"{ours / added:.2f}x" if name != "bare call" and added > 0 else "—"
        print(f"| {name} | {value * 1e9:.0f} | {added * 1e9:.0f} | {ratio} |")
    print()
    print("Per scrape (text format, median):")
    print("| series | obskit store ms | prometheus-client ms | obskit ÷ prometheus-client |")
    print("|---|---:|---:|---:|")
    for label, a, b in bench_scrape():
        print(f"| {label} | {a * 1e3:.2f} | {b * 1e3:.2f} | {a / b:.2f}x |")
    obskit.shutdown()


if __name__ == "__main__":
    sys.exit(main())
