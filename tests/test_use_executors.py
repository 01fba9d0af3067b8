"""Thread-pool saturation: busy workers, queue depth and queue wait of tracked executors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading

from prometheus_client import CollectorRegistry

import obskit
import obskit.testing
from obskit.metrics.use.event_loop import ensure_monitor


def sample(registry: CollectorRegistry, name: str, executor: str) -> float | None:
    """One executor series."""
    return registry.get_sample_value(name, {"executor": executor})


def test_saturated_pool_reports_busy_and_queue() -> None:
    """With both workers blocked and three tasks queued: busy 2 of 2, queue depth 3."""
    registry = CollectorRegistry()
    release = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        obskit.track_executor(pool, name="work", registry=registry)
        started = threading.Barrier(3)

        def block() -> None:
            started.wait(5)
            release.wait(5)

        futures = [pool.submit(block), pool.submit(block)]
        futures += [pool.submit(release.wait, 5) for _ in range(3)]
        started.wait(5)
        try:
            assert 2 == sample(registry, "obskit_executor_busy_workers", "work")
            assert 2 == sample(registry, "obskit_executor_max_workers", "work")
            assert 2 == sample(registry, "obskit_executor_workers", "work")
            assert 3 == sample(registry, "obskit_executor_queue_depth", "work")
            assert 5 == sample(registry, "obskit_executor_tasks_total", "work")
        finally:
            release.set()
        concurrent.futures.wait(futures, timeout=5)
    assert 0 == sample(registry, "obskit_executor_busy_workers", "work")
    assert 5 == sample(registry, "obskit_executor_queue_wait_seconds_count", "work")


def test_results_and_exceptions_pass_through() -> None:
    """The wrapped submit returns the task's result and re-raises its exception unchanged."""
    registry = CollectorRegistry()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        obskit.track_executor(pool, name="io", registry=registry)
        assert 3 == pool.submit(lambda a, b: a + b, 1, b=2).result(5)
        error = ValueError("boom")

        def fail() -> None:
            raise error

        assert error is pool.submit(fail).exception(5)


def test_executor_is_held_weakly() -> None:
    """A tracked executor that becomes garbage disappears from the output."""
    registry = CollectorRegistry()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    obskit.track_executor(pool, name="gone", registry=registry)
    assert 1 == sample(registry, "obskit_executor_max_workers", "gone")
    pool.shutdown(wait=True)
    del pool
    gc.collect()
    assert sample(registry, "obskit_executor_max_workers", "gone") is None


def test_loop_default_executor_is_adopted() -> None:
    """The monitored loop's default executor is reported as asyncio_default."""

    async def main(capture: obskit.testing.Capture) -> float | None:
        ensure_monitor()
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        capture.sample("obskit_executor_tasks_total", {"executor": "asyncio_default"})
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        return capture.sample("obskit_executor_tasks_total", {"executor": "asyncio_default"})

    with obskit.testing.isolated(collectors="event_loop,executors") as capture:
        assert 1.0 == asyncio.run(main(capture))


def test_process_pool_is_read_without_wrapping() -> None:
    """A process pool is not wrapped (its callables are pickled); the gap is explained."""
    registry = CollectorRegistry()
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=1)
    try:
        obskit.track_executor(pool, name="procs", registry=registry)
        assert "submit" not in vars(pool)
        labels = {"collector": "executors", "reason": "not_a_thread_pool"}
        assert 1.0 == registry.get_sample_value("obskit_collector_unavailable_info", labels)
    finally:
        pool.shutdown(wait=True)
