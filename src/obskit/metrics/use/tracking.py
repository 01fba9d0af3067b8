"""What the application asks obskit to watch: thread pools, connection pools and queues.

``obskit.track_executor``, ``obskit.track_pool`` and ``obskit.track_queue`` put an entry in the
process-wide trackers read by ``init()``'s collectors (:mod:`obskit.metrics.use.tracked`), or,
when a ``registry=`` other than the runtime's is given, in trackers of that registry's own, read
by executors and pools sources this module attaches to the registry's USE collector. Each of
them is never-raise: an internal error is counted, and the application's call returns.

What was tracked outlives ``init()`` and ``shutdown()`` (it is the application's, not a
runtime's); ``obskit.testing.reset()`` forgets all of it, and gives tracked thread pools their
own ``submit`` back.
"""

from __future__ import annotations

import concurrent.futures
import weakref
from typing import Any

from prometheus_client import CollectorRegistry

from obskit import _caches, _guard, _live, _locks
from obskit.metrics.use.collector import attach
from obskit.metrics.use.executors import ExecutorCollector, ExecutorStats, track_in
from obskit.metrics.use.pools import PoolCollector, PoolHandle, Reader, add_pool
from obskit.metrics.use.tracked import Trackers, default_trackers

__all__ = ["attach_pool", "track_executor", "track_pool", "track_queue", "trackers_for"]

_lock = _locks.lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Trackers] = weakref.WeakKeyDictionary()


def _forget_tracked() -> None:
    """``obskit.testing.reset()``: nothing stays tracked, no thread pool stays wrapped.

    Trackers of other registries are emptied in place: their sources stay attached to the
    registry's USE collector, reading nothing.
    """
    with _lock:
        every = [default_trackers(), *_by_registry.values()]
    for trackers in every:
        for executor, stats in trackers.executors.clear():
            if stats.wrapped:
                ExecutorStats.unwrap(executor)
        trackers.pools.clear()
        trackers.queues.clear()


_caches.register(_forget_tracked, _caches.PROCESS)


def trackers_for(registry: CollectorRegistry | None) -> Trackers:
    """The trackers for ``registry``: the default ones for None or the runtime's registry.

    Any other registry gets trackers of its own, read by executors and pools sources attached to
    that registry's USE collector (see :func:`obskit.metrics.use.collector.attach`).
    """
    runtime = _live.current()
    if registry is None or (runtime is not None and registry is runtime.registry):
        return default_trackers()
    with _lock:
        trackers = _by_registry.get(registry)
        if trackers is not None:
            return trackers
        trackers = _by_registry[registry] = Trackers()
    attach(
        registry, [ExecutorCollector(trackers, adopt_loop_executors=False), PoolCollector(trackers)]
    )
    return trackers


def track_executor(
    executor: concurrent.futures.Executor,
    name: str,
    registry: CollectorRegistry | None = None,
) -> None:
    """Report saturation of ``executor`` as ``name``: workers busy, queue depth, queue wait.

    The executor is held weakly (its series disappear once it is garbage). Tracking another
    executor under a live name replaces the first. Never raises.
    """
    try:
        track_in(trackers_for(registry), executor, name)
    except Exception as exc:
        _guard.report("collectors.executors", exc)


def track_pool(
    pool: Any,
    name: str,
    *,
    used: Reader | None = None,
    idle: Reader | None = None,
    max: Reader | float | None = None,
    pending: Reader | None = None,
    timeout_errors: tuple[type[BaseException], ...] = (TimeoutError,),
    registry: CollectorRegistry | None = None,
) -> PoolHandle:
    """Report a connection pool as ``name``; returns the handle for waits and timeouts.

    ``used``, ``idle``, ``pending`` are called with the pool at scrape time; ``max`` is a number
    or such a callable. Pending acquisitions counted by the handle add to ``pending``'s value.
    The pool is held weakly; tracking another pool under a live name replaces the first.
    Never raises: on an internal error the returned handle simply is not read.
    """
    handle = PoolHandle(timeout_errors)
    attach_pool(handle, pool, name, used, idle, max, pending, registry)
    return handle


def attach_pool(
    handle: PoolHandle,
    pool: Any,
    name: str,
    used: Reader | None,
    idle: Reader | None,
    max: Reader | float | None,
    pending: Reader | None,
    registry: CollectorRegistry | None,
) -> None:
    """Track ``pool`` as ``name`` with an existing handle (a replaced pool keeps its counts)."""
    try:
        add_pool(trackers_for(registry), handle, pool, name, used, idle, max, pending)
    except Exception as exc:
        _guard.report("collectors.pools", exc)


def track_queue(queue: Any, name: str, registry: CollectorRegistry | None = None) -> None:
    """Report ``queue.qsize()`` (and ``maxsize`` when positive) as ``name``; never raises.

    Works for :class:`queue.Queue`, :class:`asyncio.Queue` and anything with ``qsize()``.
    """
    try:
        trackers_for(registry).queues.add(queue, name, None)
    except Exception as exc:
        _guard.report("collectors.pools", exc)
