"""USE collectors: CPU cost of the event-loop lag monitor, and the scrape cost of all collectors.

Part 1 runs an idle asyncio loop with and without the lag monitor (default 50 ms resolution, and
10 ms for comparison) and reports the extra CPU as a share of one core (goal: <= 0.5%). It also
times a busy loop (``await asyncio.sleep(0)`` round trips) to show the per-iteration cost of
timing the selector. Part 2 times one scrape (collect + text exposition) of all obskit USE
collectors against prometheus-client's default process/platform/GC collectors and the
OpenTelemetry system-metrics instrumentation (collection through an in-memory reader: no text
rendering, which favours it). Every figure is a median of interleaved rounds.

    .venv/bin/python benchmarks/bench_use.py            # about 50 s
    .venv/bin/python benchmarks/bench_use.py --quick    # about 12 s, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector as PromProcessCollector

import obskit
from obskit.metrics.use.cgroup import CgroupCollector
from obskit.metrics.use.collector import UseCollector, attach
from obskit.metrics.use.event_loop import EventLoopCollector, ensure_monitor
from obskit.metrics.use.gc import GcCollector
from obskit.metrics.use.process import ProcessCollector

# --- part 1: the loop-lag monitor -------------------------------------------------------------


def idle_cpu(interval: float | None, seconds: float) -> float:
    """CPU seconds per wall second of an idle loop, with a monitor at ``interval`` (or none)."""
    collector = EventLoopCollector(interval=interval or 1.0)
    if interval is not None:
        collector.start()

    async def main() -> float:
        if interval is not None:
            ensure_monitor()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)

    try:
        return asyncio.run(main())
    finally:
        collector.stop()


def bare_timer_cpu(interval: float, seconds: float) -> float:
    """The floor: a timer that only reschedules itself, waking the loop as often as the monitor."""

    async def main() -> float:
        loop = asyncio.get_running_loop()

        def tick() -> None:
            handle[0] = loop.call_later(interval, tick)

        handle = [loop.call_later(interval, tick)]
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        handle[0].cancel()
        return (time.process_time() - cpu) / (time.perf_counter() - wall)

    return asyncio.run(main())


def busy_iteration_ns(monitored: bool, iterations: int) -> float:
    """Nanoseconds per ``await asyncio.sleep(0)`` round trip (one loop iteration each)."""
    collector = EventLoopCollector()
    if monitored:
        collector.start()

    async def main() -> float:
        if monitored:
            ensure_monitor()
        start = time.perf_counter()
        for _ in range(iterations):
            await asyncio.sleep(0)
        return (time.perf_counter() - start) / iterations * 1e9

    try:
        return asyncio.run(main())
    finally:
        collector.stop()


def ensure_call_ns(calls: int) -> float:
    """Nanoseconds per ensure_monitor() call once the running loop is monitored."""
    collector = EventLoopCollector()
    collector.start()

    async def main() -> float:
        ensure_monitor()
        start = time.perf_counter()
        for _ in range(calls):
            ensure_monitor()
        return (time.perf_counter() - start) / calls * 1e9

    try:
        return asyncio.run(main())
    finally:
        collector.stop()


def part_one(rounds: int, seconds: float, iterations: int) -> None:
    configs: dict[str, float | None] = {"no monitor": None, "50 ms (default)": 0.05, "10 ms": 0.01}
    shares: dict[str, list[float]] = {name: [] for name in configs}
    shares["bare 50 ms timer"] = []
    busy: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for name, interval in configs.items():
            shares[name].append(idle_cpu(interval, seconds))
        shares["bare 50 ms timer"].append(bare_timer_cpu(0.05, seconds))
        for monitored in (False, True):
            busy[monitored].append(busy_iteration_ns(monitored, iterations))
    base = statistics.median(shares["no monitor"])
    print(f"\nLoop-lag monitor, idle loop ({rounds} rounds x {seconds:.1f} s, medians)")
    print(f"{'configuration':<18}{'CPU of one core':>18}{'monitor cost':>16}")
    for name in shares:
        share = statistics.median(shares[name])
        print(f"{name:<18}{share * 100:>17.3f}%{(share - base) * 100:>15.3f}%")
    ensure = statistics.median(ensure_call_ns(iterations * 5) for _ in range(rounds))
    print(f"\nensure_monitor() once the loop is monitored: {ensure:.0f} ns per call (median)")
    plain, timed = statistics.median(busy[False]), statistics.median(busy[True])
    print(f"\nBusy loop, {iterations} iterations ({rounds} rounds; median, and best round)")
    print(f"without monitor  {plain:8.0f} ns/iteration  (best {min(busy[False]):.0f})")
    print(
        f"with monitor     {timed:8.0f} ns/iteration  (best {min(busy[True]):.0f}; "
        f"median +{timed - plain:.0f} ns, best +{min(busy[True]) - min(busy[False]):.0f} ns)"
    )


# --- part 1b: the GC callback -------------------------------------------------------------------


def _young_collection_ns(count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        gc.collect(0)
    return (time.perf_counter() - start) / count * 1e9


def _empty_callback(phase: str, info: dict[str, Any]) -> None:
    return None


def part_gc(rounds: int, count: int) -> None:
    samples: dict[str, list[float]] = {"no callback": [], "empty callback": [], "obskit": []}
    source = GcCollector()
    for _ in range(rounds):
        samples["no callback"].append(_young_collection_ns(count))
        gc.callbacks.append(_empty_callback)
        samples["empty callback"].append(_young_collection_ns(count))
        gc.callbacks.remove(_empty_callback)
        source.start()
        samples["obskit"].append(_young_collection_ns(count))
        source.stop()
    print(f"\nGC callback, gc.collect(0) x {count} ({rounds} rounds, medians)")
    base = statistics.median(samples["no callback"])
    for name, values in samples.items():
        value = statistics.median(values)
        print(f"{name:<18}{value:>8.0f} ns/collection  (+{value - base:.0f} ns)")


# --- part 2: scrape cost ------------------------------------------------------------------------


def obskit_registry() -> tuple[CollectorRegistry, Callable[[], None]]:
    """Every obskit USE collector, with a live monitored loop, a tracked executor, pool, queue."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    loop_collector = EventLoopCollector()
    loop_collector.start()
    asyncio.run_coroutine_threadsafe(_ensure(), loop).result(5)
    gc_collector = GcCollector()
    gc_collector.start()
    registry = CollectorRegistry()
    attach(registry, [ProcessCollector(), CgroupCollector(), loop_collector, gc_collector])
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    jobs: queue.Queue[int] = queue.Queue(maxsize=100)

    class Pool:
        in_use, free = 2, 3

    pool = Pool()
    obskit.track_executor(executor, "work", registry=registry)
    obskit.track_pool(
        pool, "db", used=lambda p: p.in_use, idle=lambda p: p.free, max=5, registry=registry
    )
    obskit.track_queue(jobs, "jobs", registry=registry)
    keep = [pool, jobs]

    def close() -> None:
        loop_collector.stop()
        gc_collector.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        executor.shutdown()
        keep.clear()

    return registry, close


def _use_collector(registry: CollectorRegistry) -> UseCollector:
    from obskit.metrics.use import collector

    found = collector._attached.get(registry)
    assert found is not None
    return found


async def _ensure() -> None:
    ensure_monitor()


def prometheus_defaults() -> CollectorRegistry:
    """prometheus-client's default process, platform and GC collectors on a fresh registry."""
    registry = CollectorRegistry()
    PromProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def otel_reader(config: dict[str, list[str] | None] | None) -> tuple[Any, Callable[[], None]]:
    """OpenTelemetry system metrics on an SDK meter provider with an in-memory reader."""
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = SystemMetricsInstrumentor(config=config)
    instrumentor.instrument(meter_provider=provider)

    def close() -> None:
        instrumentor.uninstrument()
        provider.shutdown()

    return reader, close


def per_call_us(fn: Callable[[], Any], budget_s: float) -> float:
    """Microseconds per call, calling ``fn`` for about ``budget_s`` seconds (at least 3 calls)."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < budget_s:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e6


def part_two(rounds: int, budget: float) -> None:
    ours, close_ours = obskit_registry()
    prom = prometheus_defaults()
    breakdown = {
        source.name: statistics.median(
            per_call_us(lambda s=source: s.read([]), budget / 4) for _ in range(rounds)
        )
        for source in _use_collector(ours).sources
    }
    peers: dict[str, Callable[[], Any]] = {
        "obskit USE (all 6 collectors)": lambda: generate_latest(ours),
        "prometheus-client defaults": lambda: generate_latest(prom),
    }
    closers = [close_ours]
    text = generate_latest(ours).decode()
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    try:
        process_only = {
            key: value
            for key, value in _otel_default_config().items()
            if key.startswith(("process.", "cpython."))
        }
        full, close_full = otel_reader(None)
        peers["otel system-metrics (default)"] = full.get_metrics_data
        closers.append(close_full)
        # Two instrumentors cannot coexist (instrument() is a singleton): the process-only
        # variant is timed after the default one is removed.
        results = _time(peers, rounds, budget)
        close_full()
        closers.remove(close_full)
        del peers["otel system-metrics (default)"]
        proc_reader, close_proc = otel_reader(process_only)
        closers.append(close_proc)
        results.update(
            _time({"otel system-metrics (process.*)": proc_reader.get_metrics_data}, rounds, budget)
        )
    except ImportError:
        results = _time(peers, rounds, budget)
        print("(opentelemetry-instrumentation-system-metrics not installed: not compared)")
    finally:
        for close in closers:
            close()
    base = results["obskit USE (all 6 collectors)"]
    print(f"\nScrape cost ({rounds} rounds x {budget} s each, medians; obskit: {series} samples)")
    print(f"{'collectors':<34}{'us/scrape':>12}{'vs obskit':>12}")
    for name, value in results.items():
        print(f"{name:<34}{value:>12.0f}{value / base:>11.2f}x")
    print("obskit, by source (read only, no rendering):")
    for source, cost in breakdown.items():
        print(f"  {source:<32}{cost:>12.0f}")


def _otel_default_config() -> dict[str, list[str] | None]:
    from opentelemetry.instrumentation.system_metrics import _DEFAULT_CONFIG

    return dict(_DEFAULT_CONFIG)


def _time(peers: dict[str, Callable[[], Any]], rounds: int, budget: float) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in peers}
    for fn in peers.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in peers.items():
            samples[name].append(per_call_us(fn, budget))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    gc.collect()
    print(f"obskit {obskit.__version__}; 2-core shared machine: figures are medians")
    if args.quick:
        part_one(rounds=2, seconds=0.5, iterations=20_000)
        part_gc(rounds=3, count=5_000)
        part_two(rounds=3, budget=0.1)
    else:
        part_one(rounds=6, seconds=1.5, iterations=40_000)
        part_gc(rounds=7, count=20_000)
        part_two(rounds=5, budget=0.3)


if __name__ == "__main__":
    main()
