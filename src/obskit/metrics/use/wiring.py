"""``init()``'s part for USE collectors: build the configured sources, register one collector.

The ``collectors`` setting names the sources (process, cgroup, event_loop, gc, executors, pools).
They are read at scrape time by a single :class:`~obskit.metrics.use.collector.UseCollector`
registered on the runtime's registry; sources with background state (the GC callback, event-loop
monitors) are started here and stopped on shutdown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from obskit.metrics.use.collector import Source, UseCollector
from obskit.metrics.use.publish import Publisher

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

    def __init__(self, collector: UseCollector, publisher: Publisher | None = None) -> None:
        self.collector = collector
        self.publisher = publisher

    def start(self) -> None:
        """Start sources with background state (GC callback, loop monitor)."""
        for source in self.collector.sources:
            hook = getattr(source, "start", None)
            if hook is not None:
                hook()
        if self.publisher is not None:
            self.publisher.start()

    def after_fork_in_child(self) -> None:
        """Forget the parent's per-process state; series now carry the child's pid."""
        for source in self.collector.sources:
            hook = getattr(source, "after_fork_in_child", None)
            if hook is not None:
                hook()
        if self.publisher is not None:
            self.publisher.after_fork_in_child()

    def shutdown(self, timeout: float) -> None:
        """Stop background state; the runtime unregisters the collector itself."""
        if self.publisher is not None:
            self.publisher.stop(timeout)
        for source in self.collector.sources:
            hook = getattr(source, "stop", None)
            if hook is not None:
                hook()


def _shared_values(runtime: Runtime) -> Any:
    """The metrics part's multi-process value class when workers share files, else None."""
    component: Any = runtime.components.get("metrics")
    shared = getattr(component, "multiprocess", None)
    return getattr(shared, "value_class", None)


def build(runtime: Runtime) -> UseComponent | None:
    """Register the configured USE collectors on ``runtime.registry``; None when none are on."""
    settings = runtime.settings
    if not settings.metrics or not settings.collectors:
        return None
    shared = _Shared()
    sources = [FACTORIES[name](shared) for name in settings.collectors if name in FACTORIES]
    if not sources:
        return None
    values = _shared_values(runtime)
    if values is None:
        collector, publisher = UseCollector(sources), None
    else:
        # Each worker publishes its per-process families to the shared files (with its pid on
        # gauges); the registry keeps the container-wide ones and every source's status.
        per_process = [source for source in sources if source.per_process]
        collector = UseCollector(sources, published=[s.name for s in per_process])
        publisher = Publisher(per_process, values)
    component = UseComponent(collector, publisher)
    component.start()
    runtime.register(collector)
    return component
