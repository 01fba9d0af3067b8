"""Thread-pool saturation: workers busy, tasks queued and how long they waited to start.

``obskit.track_executor(executor, name=...)`` watches a user's executor; the default executor of
every monitored event loop (what ``run_in_executor(None, ...)`` and ``asyncio.to_thread`` use) is
watched as ``asyncio_default`` once it exists.

Why ``submit`` is wrapped: ThreadPoolExecutor's own ``_idle_semaphore`` is a hint for reusing
threads, not a count — it is released once per finished task, so under saturation (one worker
draining a long queue) it claims idle workers that are all busy. A wrapper set on the instance
(removed again on shutdown) counts tasks starting and finishing, and times the wait between
``submit`` and start. The queue depth comes from ``_work_queue``, the thread count from
``_threads``; where those internals are missing the series is left out and noted. Only thread
pools are wrapped: a process pool pickles its callables, so it is read without wrapping.

Families (label ``executor``): ``obskit_executor_workers``, ``obskit_executor_max_workers``,
``obskit_executor_busy_workers``, ``obskit_executor_queue_depth``, ``obskit_executor_tasks_total``,
``obskit_executor_queue_wait_seconds`` (histogram).
"""

from __future__ import annotations

import concurrent.futures
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.metrics_core import Metric

from obskit import _locks
from obskit.metrics import catalogue
from obskit.metrics.use.collector import (
    FamilySpec,
    Notes,
    Reading,
    counter_of,
    cumulative_buckets,
    empty_families,
    histogram_of,
    standalone_collect,
)
from obskit.metrics.use.tracked import Trackers, default_trackers

__all__ = ["ExecutorCollector", "ExecutorStats", "track_in"]

WAIT_BUCKETS = catalogue.EXECUTOR_QUEUE_WAIT.buckets
DEFAULT_LOOP_EXECUTOR = "asyncio_default"


class ExecutorStats:
    """Counts kept by the wrapped ``submit`` of one thread pool."""

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self.lock = _locks.lock()  # guards the counts below; never held around user code
        self.submitted = 0
        self.busy = 0
        self.wait_counts = [0] * (len(WAIT_BUCKETS) + 1)
        self.wait_sum = 0.0
        self.wrapped = False
        if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            self._wrap(executor)

    def _wrap(self, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        # The wrapper holds the executor weakly and calls the class's submit: no reference cycle.
        ref = weakref.ref(executor)
        original = type(executor).submit
        stats = self
        clock = time.perf_counter

        def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            target = ref()
            if target is None:  # unreachable while a caller holds the executor
                raise RuntimeError("executor is gone")
            queued_at = clock()
            with stats.lock:
                stats.submitted += 1

            def run(*a: Any, **k: Any) -> Any:
                waited = clock() - queued_at
                with stats.lock:
                    stats.busy += 1
                    stats.wait_counts[bisect_left(WAIT_BUCKETS, waited)] += 1
                    stats.wait_sum += waited
                try:
                    return fn(*a, **k)
                finally:
                    with stats.lock:
                        stats.busy -= 1

            return original(target, run, *args, **kwargs)

        executor.submit = submit  # type: ignore[method-assign]
        self.wrapped = True

    @staticmethod
    def unwrap(executor: Any) -> None:
        """Remove the instance-level ``submit`` so the class's own is used again."""
        if "submit" in getattr(executor, "__dict__", {}):
            del executor.submit


def track_in(trackers: Trackers, executor: concurrent.futures.Executor, name: str) -> None:
    """Track ``executor`` as ``name`` in ``trackers`` (wrapping a thread pool's ``submit``)."""
    stats = trackers.executors.find(executor)
    if stats is None:
        stats = ExecutorStats(executor)
    if not trackers.executors.add(executor, name, stats) and stats.wrapped:
        ExecutorStats.unwrap(executor)


class ExecutorCollector:
    """USE source for tracked executors (and the monitored loops' default executors)."""

    name = "executors"

    def __init__(self, trackers: Trackers | None = None, adopt_loop_executors: bool = True):
        self.trackers = trackers if trackers is not None else default_trackers()
        self.adopt_loop_executors = adopt_loop_executors

    def describe(self) -> list[Metric]:
        """Empty families with every name this source may yield."""
        return [
            *empty_families(_FAMILIES),
            counter_of(catalogue.TRACKED_DROPPED),
        ]

    def collect(self) -> Iterator[Metric]:
        """Families plus ``obskit_collector_up`` when registered on its own."""
        return standalone_collect(self)

    def read(self, notes: Notes) -> list[Metric]:
        """Read every live tracked executor."""
        if self.adopt_loop_executors:
            self._adopt_loop_executors()
        reading = Reading(_FAMILIES)
        waits = histogram_of(catalogue.EXECUTOR_QUEUE_WAIT)
        for name, executor, stats in self.trackers.executors.live():
            label = (name,)
            reading.put(
                "obskit_executor_max_workers", getattr(executor, "_max_workers", None), label
            )
            threads = getattr(executor, "_threads", None)
            reading.put(
                "obskit_executor_workers", len(threads) if threads is not None else None, label
            )
            queue = getattr(executor, "_work_queue", None)
            if queue is not None and hasattr(queue, "qsize"):
                reading.put("obskit_executor_queue_depth", queue.qsize(), label)
            else:
                notes.append("queue_depth_unavailable")
            if not stats.wrapped:
                notes.append("not_a_thread_pool")
                continue
            with stats.lock:
                submitted, busy = stats.submitted, stats.busy
                counts, wait_sum = list(stats.wait_counts), stats.wait_sum
            reading.put("obskit_executor_busy_workers", busy, label)
            reading.put("obskit_executor_tasks", submitted, label)
            waits.add_metric([name], cumulative_buckets(WAIT_BUCKETS, counts), wait_sum)
        families = reading.families()
        if waits.samples:
            families.append(waits)
        # Executors only: the pools source reports pools and queues, and both feed one family.
        dropped = counter_of(catalogue.TRACKED_DROPPED)
        tracker = self.trackers.executors
        for reason, count in sorted(tracker.dropped.items()):
            dropped.add_metric([tracker.kind, reason], count)
        families.append(dropped)
        return families

    def _adopt_loop_executors(self) -> None:
        from obskit.metrics.use.event_loop import monitored_loops

        for index, loop in enumerate(monitored_loops()):
            executor = getattr(loop, "_default_executor", None)
            if executor is None or self.trackers.executors.find(executor) is not None:
                continue
            name = DEFAULT_LOOP_EXECUTOR if index == 0 else f"{DEFAULT_LOOP_EXECUTOR}_{index}"
            track_in(self.trackers, executor, name)


_FAMILIES: tuple[FamilySpec, ...] = catalogue.group("use.executors")
