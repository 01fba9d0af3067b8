"""``init()``'s part for USE collectors: build the configured sources, register one collector.

The ``collectors`` setting names the sources (process, cgroup, event_loop, gc, executors, pools).
They are read at scrape time by a single :class:`~obskit.metrics.use.collector.UseCollector`
registered on the runtime's registry; sources with background state (the GC callback, event-loop
monitors) are started here and stopped on shutdown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from obskit.metrics.use.collector import Source, UseCollector

if TYPE_CHECKING:
    from obskit._runtime import Runtime
    from obskit.metrics.use.cgroup import CgroupReader

__all__ = ["UseComponent", "build"]


class _Shared:
    """What several sources of one runtime share: the cgroup reader and its cached limits."""

    def __init__(self) -> None:
        self._cgroup: CgroupReader | None = None

    def cgroup(self) -> CgroupReader:
        from obskit.metrics.use.cgroup import CgroupReader

        if self._cgroup is None:
            self._cgroup = CgroupReader()
        return self._cgroup


def _process(shared: _Shared) -> Source:
    from obskit.metrics.use.process import ProcessCollector

    return ProcessCollector(cgroup=shared.cgroup())


def _cgroup(shared: _Shared) -> Source:
    from obskit.metrics.use.cgroup import CgroupCollector

    return CgroupCollector(reader=shared.cgroup())


def _gc(shared: _Shared) -> Source:
    from obskit.metrics.use.gc import GcCollector

    return GcCollector()


def _event_loop(shared: _Shared) -> Source:
    from obskit.metrics.use.event_loop import EventLoopCollector

    return EventLoopCollector()


def _executors(shared: _Shared) -> Source:
    from obskit.metrics.use.executors import ExecutorCollector

    return ExecutorCollector()


def _pools(shared: _Shared) -> Source:
    from obskit.metrics.use.pools import PoolCollector

    return PoolCollector()


# collector name (as in the ``collectors`` setting) -> how to build its source
FACTORIES: dict[str, Callable[[_Shared], Source]] = {
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
        """Forget the parent's per-process state (the child's own figures start afresh)."""
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


def build(runtime: Runtime) -> UseComponent | None:
    """Register the configured USE collectors on ``runtime.registry``; None when none are on."""
    settings = runtime.settings
    if not settings.metrics or not settings.collectors:
        return None
    shared = _Shared()
    sources = [FACTORIES[name](shared) for name in settings.collectors if name in FACTORIES]
    if not sources:
        return None
    # With several workers, the metrics part publishes the per-process families to the shared
    # files (obskit.metrics.workers); this collector is read the same way in both modes.
    collector = UseCollector(sources)
    component = UseComponent(collector)
    component.start()
    runtime.register(collector)
    return component
