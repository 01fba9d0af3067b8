"""Event-loop lag, busy time and tasks, for a loop monitored from inside itself."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

import obskit
import obskit.testing
from obskit.metrics.use import event_loop
from obskit.metrics.use.collector import UseCollector
from obskit.metrics.use.event_loop import EventLoopCollector, ensure_monitor


@pytest.fixture
def monitored() -> Iterator[tuple[EventLoopCollector, CollectorRegistry]]:
    """An active event-loop collector on a fresh registry."""
    collector = EventLoopCollector()
    registry = CollectorRegistry()
    registry.register(UseCollector([collector]))
    collector.start()
    try:
        yield collector, registry
    finally:
        collector.stop()


def slow_lags(registry: CollectorRegistry) -> float:
    """Lag observations above 100 ms so far."""
    total = registry.get_sample_value("obskit_event_loop_lag_seconds_count") or 0.0
    fast = registry.get_sample_value("obskit_event_loop_lag_seconds_bucket", {"le": "0.1"}) or 0.0
    return total - fast


def test_blocking_callback_appears_within_one_second(
    monitored: tuple[EventLoopCollector, CollectorRegistry],
) -> None:
    """A callback blocking the loop for 200 ms shows as a lag over 100 ms within one second."""
    _, registry = monitored

    async def main() -> float:
        ensure_monitor()
        await asyncio.sleep(0.12)
        before = slow_lags(registry)
        time.sleep(0.2)  # the blocking call
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and slow_lags(registry) == before:
            await asyncio.sleep(0.01)
        return slow_lags(registry) - before

    assert 1.0 == asyncio.run(main())


def test_busy_time_and_tasks(monitored: tuple[EventLoopCollector, CollectorRegistry]) -> None:
    """Blocking time counts as busy; the task gauge counts the loop's unfinished tasks."""
    _, registry = monitored

    async def main() -> tuple[float, float | None]:
        ensure_monitor()
        await asyncio.sleep(0.06)
        busy_before = registry.get_sample_value("obskit_event_loop_busy_seconds_total") or 0.0
        time.sleep(0.2)
        busy = registry.get_sample_value("obskit_event_loop_busy_seconds_total") or 0.0
        sleepers = [asyncio.create_task(asyncio.sleep(10)) for _ in range(5)]
        tasks = registry.get_sample_value("obskit_event_loop_tasks")
        for task in sleepers:
            task.cancel()
        return busy - busy_before, tasks

    busy, tasks = asyncio.run(main())
    assert busy >= 0.2
    assert 6 == tasks  # main() and the five sleepers


def test_fast_path_after_first_call(
    monitored: tuple[EventLoopCollector, CollectorRegistry],
) -> None:
    """After the first call for a loop, ensure_monitor() starts no second monitor."""
    collector, _ = monitored

    async def main() -> int:
        for _ in range(100):
            ensure_monitor()
        return len(collector.loops())

    assert 1 == asyncio.run(main())


def test_closed_loop_counts_are_kept(
    monitored: tuple[EventLoopCollector, CollectorRegistry],
) -> None:
    """Once a monitored loop closes its lag observations stay in the (monotonic) histogram."""
    _, registry = monitored

    async def main() -> float:
        ensure_monitor()
        await asyncio.sleep(0.12)
        return registry.get_sample_value("obskit_event_loop_lag_seconds_count") or 0.0

    during = asyncio.run(main())
    after = registry.get_sample_value("obskit_event_loop_lag_seconds_count") or 0.0
    assert during >= 1
    assert after >= during


def test_no_loop_is_explained(monitored: tuple[EventLoopCollector, CollectorRegistry]) -> None:
    """Before any loop is monitored the collector says so instead of showing nothing."""
    _, registry = monitored
    labels = {"collector": "event_loop", "reason": "no_loop_monitored"}
    assert 1.0 == registry.get_sample_value("obskit_collector_unavailable_info", labels)


def test_inactive_collector_makes_ensure_a_no_op() -> None:
    """Without an active collector ensure_monitor() starts nothing and raises nothing."""

    async def main() -> None:
        ensure_monitor()
        ensure_monitor()

    asyncio.run(main())
    assert event_loop._active is None


def test_init_inside_running_loop_starts_monitor() -> None:
    """init() called from inside a running loop monitors that loop right away."""

    async def main() -> float | None:
        with obskit.testing.isolated(collectors="event_loop") as capture:
            await asyncio.sleep(0.12)
            return capture.sample("obskit_event_loop_monitors")

    assert 1.0 == asyncio.run(main())


def test_stop_restores_selector(monitored: tuple[EventLoopCollector, CollectorRegistry]) -> None:
    """Stopping the collector puts the loop's own selector back."""
    collector, _ = monitored

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        original = loop._selector  # type: ignore[attr-defined]
        ensure_monitor()
        wrapped = loop._selector is not original  # type: ignore[attr-defined]
        collector.stop()
        return wrapped and loop._selector is original  # type: ignore[attr-defined]

    assert asyncio.run(main())


def _slow_lags(capture: obskit.testing.Capture) -> float:
    total = capture.sample("obskit_event_loop_lag_seconds_count") or 0.0
    fast = capture.sample("obskit_event_loop_lag_seconds_bucket", {"le": "0.1"}) or 0.0
    return total - fast


def test_asyncio_worker_with_red_handlers_reports_loop_lag() -> None:
    """A queue consumer that calls init() before asyncio.run() and only decorates its async
    handlers with @obskit.red (no middleware) gets its loop monitored: a handler blocking the
    loop for 200 ms shows as a lag over 100 ms."""

    @obskit.red
    async def handle(message: int) -> None:
        if message == 2:
            time.sleep(0.2)  # a blocking call in a handler
        await asyncio.sleep(0.07)

    async def consume(queue: asyncio.Queue[int]) -> None:
        while not queue.empty():
            await handle(await queue.get())

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for message in range(5):
            queue.put_nowait(message)
        await consume(queue)

    with obskit.testing.isolated(collectors="event_loop") as capture:
        asyncio.run(main())
        slow = _slow_lags(capture)
        total = capture.sample("obskit_event_loop_lag_seconds_count") or 0.0
    assert total >= 3  # the 50 ms timer ran through the ~0.55 s of the run
    assert 1.0 == slow


def test_bound_inside_a_loop_starts_the_monitor() -> None:
    """A coroutine that only uses obskit.bound() gets its loop monitored too."""

    async def main() -> None:
        with obskit.bound(job="nightly"):
            await asyncio.sleep(0.06)
            time.sleep(0.2)
            await asyncio.sleep(0.06)

    with obskit.testing.isolated(collectors="event_loop") as capture:
        asyncio.run(main())
        slow = _slow_lags(capture)
    assert 1.0 == slow


def test_monitor_event_loop_names_a_loop_before_init() -> None:
    """obskit.monitor_event_loop(loop) before init(), for a loop running in another thread:
    remembered, and monitored from inside that loop once init() starts the collector."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        assert False is obskit.monitor_event_loop(loop)  # no collector yet
        with obskit.testing.isolated(collectors="event_loop") as capture:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not capture.sample("obskit_event_loop_monitors"):
                time.sleep(0.02)
            monitors = capture.sample("obskit_event_loop_monitors")
            loop.call_soon_threadsafe(time.sleep, 0.2)  # block that loop
            while time.monotonic() < deadline and not _slow_lags(capture):
                time.sleep(0.02)
            slow = _slow_lags(capture)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert (1.0, 1.0) == (monitors, slow)


def test_monitor_event_loop_outside_a_loop_says_what_it_needs() -> None:
    """Without a running loop and without loop=, the call fails with a message saying how."""
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        obskit.monitor_event_loop()


def test_monitor_event_loop_in_the_running_loop() -> None:
    """Called inside the loop after init(), it monitors that loop at once (True)."""

    async def main(capture: obskit.testing.Capture) -> tuple[bool, float | None]:
        started = obskit.monitor_event_loop()
        return started, capture.sample("obskit_event_loop_monitors")

    with obskit.testing.isolated(collectors="event_loop") as capture:
        assert (True, 1.0) == asyncio.run(main(capture))
