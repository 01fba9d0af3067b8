"""``init()``'s part for USE collectors: build the configured sources, register one collector.

The ``collectors`` setting names the sources (process, cgroup, event_loop, gc, executors, pools).
They are read at scrape time by a single :class:`~obskit.metrics.use.collector.UseCollector`
registered on the runtime's registry; sources with background state (the GC callback, event-loop
monitors) are started here and stopped on shutdown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from obskit.metrics.use.collector import Source, UseCollector

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = ["UseComponent", "build"]


def _process(runtime: Runtime) -> Source:
    from obskit.metrics.use.process import ProcessCollector

    return ProcessCollector()


def _cgroup(runtime: Runtime) -> Source:
    from obskit.metrics.use.cgroup import CgroupCollector

    return CgroupCollector()


def _gc(runtime: Runtime) -> Source:
    from obskit.metrics.use.gc import GcCollector

    return GcCollector()


def _event_loop(runtime: Runtime) -> Source:
    from obskit.metrics.use.event_loop import EventLoopCollector

    return EventLoopCollector()


def _executors(runtime: Runtime) -> Source:
    from obskit.metrics.use.executors import ExecutorCollector

    return ExecutorCollector()


def _pools(runtime: Runtime) -> Source:
    from obskit.metrics.use.pools import PoolCollector

    return PoolCollector()


# collector name (as in the ``collectors`` setting) -> how to build its source
FACTORIES: dict[str, Callable[[Runtime], Source]] = {
    "process": _process,
    "cgroup": _cgroup,
    "event_loop": _event_loop,
    "gc": _gc,
    "executors": _executors,
    "pools": _pools,
}


class UseComponent:
    """The runtime component owning the USE collector and its sources' background state."""

    name = "collectors"

    def __init__(self, collector: UseCollector) -> None:
        self.collector = collector

    def start(self) -> None:
        """Start sources with background state (GC callback, loop monitor)."""
        for source in self.collector.sources:
            hook = getattr(source, "start", None)
            if hook is not None:
                hook()

    def after_fork_in_child(self) -> None:
        """Forget the parent's per-process state; series now carry the child's pid."""
        for source in self.collector.sources:
            hook = getattr(source, "after_fork_in_child", None)
            if hook is not None:
                hook()

    def shutdown(self, timeout: float) -> None:
        """Stop background state; the runtime unregisters the collector itself."""
        for source in self.collector.sources:
            hook = getattr(source, "stop", None)
            if hook is not None:
                hook()


def multiprocess(runtime: Runtime) -> bool:
    """Whether metrics are shared by several worker processes (gunicorn-style)."""
    return bool(runtime.settings.multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def build(runtime: Runtime) -> UseComponent | None:
    """Register the configured USE collectors on ``runtime.registry``; None when none are on."""
    settings = runtime.settings
    if not settings.metrics or not settings.collectors:
        return None
    sources = [FACTORIES[name](runtime) for name in settings.collectors if name in FACTORIES]
    if not sources:
        return None
    collector = UseCollector(sources, worker_label="pid" if multiprocess(runtime) else None)
    component = UseComponent(collector)
    component.start()
    runtime.register(collector)
    return component
