"""Event-loop lag, utilization and task count for the loops the application actually runs.

A monitor is started *from inside* a running loop by :func:`ensure_monitor` — every obskit entry
point that runs in a loop calls it (the ASGI middleware per request, async ``@obskit.red`` per
call, ``obskit.bound()``), which after the first call for a loop costs one identity check — by
``init()`` when it runs inside a loop, and by :func:`monitor_event_loop` for a loop named
explicitly (remembered, so a later ``init()`` monitors it too). The monitor is a timer: every
``interval`` seconds it asks to run and records how late it ran (the lag: time the loop spent on
something else, such as a blocking call). A 200 ms blocking callback makes the next tick at least
~150 ms late, so it shows up in the histogram at the next scrape.

Utilization (busy time over wall time) comes from timing the selector's ``select()``: the loop is
idle exactly while it waits there. That needs an asyncio selector loop; for other loops (uvloop)
it is noted as ``utilization_unsupported`` and lag and tasks still work. The lag histogram is
written by the loop thread only (one writer, no lock) and read by the scrape.

Families: ``obskit_event_loop_lag_seconds`` (histogram), ``obskit_event_loop_busy_seconds_total``,
``obskit_event_loop_utilization_ratio`` (since the previous scrape), ``obskit_event_loop_tasks``,
``obskit_event_loop_monitors``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from obskit import _caches, _guard, _locks, context
from obskit.metrics import catalogue
from obskit.metrics.use.collector import (
    FamilySpec,
    Notes,
    Reading,
    cumulative_buckets,
    empty_families,
    histogram_of,
    standalone_collect,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "LAG_BUCKETS",
    "EventLoopCollector",
    "LoopMonitor",
    "ensure_monitor",
    "monitor_event_loop",
    "monitored_loops",
]

# Resolution of the lag timer: 20 wake-ups a second cost well under 0.1% of a core (see
# docs/performance.md) and catch any stall longer than the interval.
DEFAULT_INTERVAL = 0.05
LAG_BUCKETS = catalogue.EVENT_LOOP_LAG.buckets


_clock = time.perf_counter


def _dead() -> None:
    return None


# The loop ensure_monitor() last handled (weakly); the fast path compares against it.
_last_loop: Callable[[], object | None] = _dead
# The collector monitors are started for; None when the event_loop collector is off.
_active: EventLoopCollector | None = None


# The running loop or None, without raising outside one (sync callers of bound() pay no
# exception); asyncio's C function.
_running_loop = asyncio._get_running_loop
# Loops named by monitor_event_loop(): monitored whenever a collector becomes active (the
# application's request outlives runtimes; obskit.testing.reset() forgets it).
_requested: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_caches.register(_requested.clear, _caches.PROCESS)


def ensure_monitor() -> None:
    """Start monitoring the running loop, if any; cheap enough to call on every request."""
    if _active is None:
        return  # no collector: start() looks at the loop again when one starts
    loop = _running_loop()
    if loop is None or _last_loop() is loop:
        return
    _first_sight(loop)


def monitor_event_loop(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Report lag, utilization and tasks of the running event loop (or of ``loop``).

    obskit's entry points start this by themselves in the loop they run in (the ASGI middleware,
    async ``@obskit.red`` functions, ``obskit.bound()``); call it for a loop that runs none of
    them. It is remembered: called before ``init()``, the loop is monitored once ``init()`` has
    started the ``event_loop`` collector (and again after a re-``init()``). ``loop`` may belong to
    another thread: the monitor is then started inside it. Returns whether a monitor runs or is
    scheduled now (False before ``init()`` or with the collector off).

    Raises ``RuntimeError`` without ``loop`` outside a running loop.
    """
    if loop is None:
        loop = _running_loop()
        if loop is None:
            raise RuntimeError(
                "obskit.monitor_event_loop() needs a running event loop: call it from inside "
                "the loop (e.g. first thing in the coroutine given to asyncio.run()) or pass loop="
            )
    try:
        _requested.add(loop)
    except TypeError:  # a loop type without weak references: monitored now only
        pass
    return _active is not None and _monitor_soon(loop)


def _monitor_soon(loop: asyncio.AbstractEventLoop) -> bool:
    """Start monitoring ``loop`` now if it runs in this thread, else from inside it."""
    if loop.is_closed():
        return False
    if _running_loop() is loop:
        _first_sight(loop)
        return True
    try:
        loop.call_soon_threadsafe(_first_sight, loop)
    except RuntimeError:  # closed meanwhile
        return False
    return True


def _first_sight(loop: asyncio.AbstractEventLoop) -> None:
    global _last_loop
    try:
        _last_loop = weakref.ref(loop)
    except TypeError:  # a loop type without weak references: keep it (one loop, bounded)
        _last_loop = lambda: loop  # noqa: E731
    collector = _active
    if collector is not None:
        try:
            collector.monitor(loop)
        except Exception as exc:
            _guard.report("collectors.event_loop", exc)


def monitored_loops() -> list[asyncio.AbstractEventLoop]:
    """The live loops monitored by the active collector (for the executors collector)."""
    collector = _active
    return collector.loops() if collector is not None else []


class _TimedSelector:
    """Wraps a loop's selector to add up the time spent waiting in ``select()`` (idle time)."""

    def __init__(self, inner: Any, monitor: LoopMonitor) -> None:
        self.inner = inner
        self._monitor = monitor

    def select(self, timeout: float | None = None) -> Any:
        if timeout == 0:
            # A poll while callbacks are ready (a busy loop): nothing to wait for, so nothing
            # idle to time; skipping the clock keeps the busy path as cheap as possible.
            return self.inner.select(0)
        monitor = self._monitor
        monitor.select_since = start = _clock()
        try:
            return self.inner.select(timeout)
        finally:
            monitor.idle += _clock() - start
            monitor.select_since = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LoopMonitor:
    """The lag timer and idle accounting of one loop; runs on that loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, bounds: Sequence[float]):
        self.loop_ref = weakref.ref(loop)
        self.interval = interval
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.lag_sum = 0.0
        self.started = time.perf_counter()
        self.idle = 0.0
        self.select_since = 0.0
        self.timed = False
        self.stopped = False
        self._expected = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._selector: _TimedSelector | None = None

    def start(self) -> None:
        """Schedule the first tick and time the selector; call on the loop's thread."""
        loop = self.loop_ref()
        if loop is None:
            return
        selector = getattr(loop, "_selector", None)
        if selector is not None and hasattr(selector, "select"):
            self._selector = _TimedSelector(selector, self)
            loop._selector = self._selector  # type: ignore[attr-defined]
            self.timed = True
        self._expected = loop.time() + self.interval
        self._handle = loop.call_at(self._expected, self._tick)

    def _tick(self) -> None:
        if self.stopped:
            return
        loop = self.loop_ref()
        if loop is None:
            return
        now = loop.time()
        # Timers may fire up to the clock resolution early: never a negative lag.
        lag = now - self._expected if now > self._expected else 0.0
        self.counts[bisect_left(self.bounds, lag)] += 1
        self.lag_sum += lag
        self._expected = now + self.interval
        self._handle = loop.call_at(self._expected, self._tick)

    def busy_seconds(self) -> float:
        """Wall time since start minus time spent waiting in ``select()``."""
        now = time.perf_counter()
        since = self.select_since
        idle = self.idle + (now - since if since else 0.0)
        return max(0.0, now - self.started - idle)

    def stop(self) -> None:
        """Stop ticking and restore the selector; safe from any thread."""
        self.stopped = True
        loop = self.loop_ref()
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            self._stop_in_loop()
        else:
            try:
                loop.call_soon_threadsafe(self._stop_in_loop)
            except RuntimeError:  # closed in the meantime
                pass

    def _stop_in_loop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = self.loop_ref()
        selector = self._selector
        if loop is None or selector is None:
            return
        inner = selector.inner
        if getattr(loop, "_selector", None) is selector:
            loop._selector = inner  # type: ignore[attr-defined]


class EventLoopCollector:
    """USE source for event loops; ``start()`` makes :func:`ensure_monitor` start monitors."""

    name = "event_loop"

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, buckets: Sequence[float] = LAG_BUCKETS
    ) -> None:
        self.interval = interval
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._lock = _locks.lock()  # guards the monitor list (never held by the loop's tick)
        self._monitors: list[LoopMonitor] = []
        self._retired_counts = [0] * (len(self.bounds) + 1)
        self._retired_sum = 0.0
        self._retired_busy = 0.0
        self._previous: tuple[float, float] | None = None  # (busy seconds, wall) at last scrape

    # --- lifecycle ---

    def start(self) -> None:
        """Become the active collector and monitor the current loop if init() runs in one."""
        global _active, _last_loop
        _active = self
        _last_loop = _dead  # loops seen while no collector was active are monitored now
        context.set_loop_hook(ensure_monitor)  # obskit.bound() checks its loop too
        ensure_monitor()
        for loop in list(_requested):
            try:
                _monitor_soon(loop)
            except Exception as exc:
                _guard.report("collectors.event_loop", exc)

    def stop(self) -> None:
        """Stop every monitor; ensure_monitor() becomes a no-op again."""
        global _active, _last_loop
        if _active is self:
            _active = None
            _last_loop = _dead
            context.set_loop_hook(None)
        with self._lock:
            monitors, self._monitors = self._monitors, []
        for monitor in monitors:
            monitor.stop()

    def after_fork_in_child(self) -> None:
        """The parent's loops do not run in the child: forget them and their counts."""
        global _last_loop
        self._monitors = []
        self._retired_counts = [0] * (len(self.bounds) + 1)
        self._retired_sum = self._retired_busy = 0.0
        self._previous = None
        _last_loop = _dead
        _requested.clear()

    def monitor(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a monitor for ``loop`` (the running loop of the calling thread)."""
        with self._lock:
            if any(m.loop_ref() is loop for m in self._monitors):
                return
            monitor = LoopMonitor(loop, self.interval, self.bounds)
            self._monitors.append(monitor)
        monitor.start()

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        """Live, open loops being monitored."""
        with self._lock:
            loops = [m.loop_ref() for m in self._monitors]
        return [loop for loop in loops if loop is not None and not loop.is_closed()]

    # --- scrape ---

    def describe(self) -> list[Metric]:
        """Empty families with every name this source may yield."""
        return empty_families(_FAMILIES)

    def collect(self) -> Iterator[Metric]:
        """Families plus ``obskit_collector_up`` when registered on its own."""
        return standalone_collect(self)

    def read(self, notes: Notes) -> list[Metric]:
        """Aggregate every monitor (retiring those whose loop closed)."""
        live = self._retire_closed()
        if not live and not any(self._retired_counts):
            notes.append("no_loop_monitored")
            return []
        counts = list(self._retired_counts)
        lag_sum, busy = self._retired_sum, self._retired_busy
        tasks, timed = 0, True
        for monitor, loop in live:
            for index, count in enumerate(list(monitor.counts)):
                counts[index] += count
            lag_sum += monitor.lag_sum
            busy += monitor.busy_seconds()
            timed = timed and monitor.timed
            tasks += _task_count(loop)
        lag = histogram_of(catalogue.EVENT_LOOP_LAG)
        lag.add_metric([], cumulative_buckets(self.bounds, counts), lag_sum)
        reading = Reading(_FAMILIES)
        reading.put("obskit_event_loop_monitors", len(live))
        reading.put("obskit_event_loop_tasks", tasks if live else None)
        if timed and live:
            reading.put("obskit_event_loop_busy_seconds", busy)
            reading.put("obskit_event_loop_utilization_ratio", self._utilization(busy, len(live)))
        elif live:
            notes.append("utilization_unsupported")
        return [lag, *reading.families()]

    def _retire_closed(self) -> list[tuple[LoopMonitor, asyncio.AbstractEventLoop]]:
        live: list[tuple[LoopMonitor, asyncio.AbstractEventLoop]] = []
        with self._lock:
            keep = []
            for monitor in self._monitors:
                loop = monitor.loop_ref()
                if loop is None or loop.is_closed():
                    # Counters must not go backwards: fold a finished loop into the totals.
                    for index, count in enumerate(monitor.counts):
                        self._retired_counts[index] += count
                    self._retired_sum += monitor.lag_sum
                    if monitor.timed:
                        self._retired_busy += monitor.busy_seconds()
                    monitor.stopped = True
                else:
                    keep.append(monitor)
                    live.append((monitor, loop))
            self._monitors = keep
        return live

    def _utilization(self, busy: float, loops: int) -> float:
        now = time.perf_counter()
        with self._lock:
            previous, self._previous = self._previous, (busy, now)
        if previous is None or now <= previous[1]:
            return 0.0
        return min(1.0, max(0.0, (busy - previous[0]) / ((now - previous[1]) * loops)))


def _task_count(loop: asyncio.AbstractEventLoop) -> int:
    # all_tasks() from another thread retries internally when the task set changes under it.
    try:
        return len(asyncio.all_tasks(loop))
    except RuntimeError:
        return 0


_FAMILIES: tuple[FamilySpec, ...] = catalogue.group("use.event_loop")
