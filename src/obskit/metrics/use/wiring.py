"""``init()``'s part for USE collectors: build the configured sources, register one collector.

The ``collectors`` setting names the sources (process, cgroup, event_loop, gc, executors, pools).
They are read at scrape time by a single :class:`~obskit.metrics.use.collector.UseCollector`
registered on the runtime's registry; sources with background state (the GC callback, event-loop
monitors) are started here and stopped on shutdown. The ``process`` and ``gc`` sources replace
prometheus-client's default process and GC collectors on that registry while they run (one set
of families, OpenTelemetry's names; see ``docs/metrics.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import GC_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client.registry import Collector

from obskit import _guard
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


# prometheus-client's default collectors that obskit's sources of the same name replace: one
# set of process and GC families (OpenTelemetry's names), never two saying the same thing.
REPLACES: dict[str, Collector] = {"process": PROCESS_COLLECTOR, "gc": GC_COLLECTOR}


class UseComponent:
    """The runtime component owning the USE collector and its sources' background state.

    ``replaced`` are prometheus-client's default collectors taken off ``registry`` while this
    component runs; shutdown puts them back.
    """

    name = "collectors"

    def __init__(
        self,
        collector: UseCollector,
        registry: CollectorRegistry | None = None,
        replaced: Sequence[Collector] = (),
    ) -> None:
        self.collector = collector
        self._registry = registry
        self._replaced = list(replaced)

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
        """Stop background state; give the registry back the default collectors replaced."""
        for source in self.collector.sources:
            hook = getattr(source, "stop", None)
            if hook is not None:
                hook()
        if self._registry is not None and self._replaced:
            # Ours first (the runtime would unregister it later): the names must be free.
            with contextlib.suppress(KeyError):
                self._registry.unregister(self.collector)
            _give_back(self._registry, self._replaced)
            self._replaced = []


def _take_over(registry: CollectorRegistry, names: Sequence[str]) -> list[Collector]:
    """Unregister the default collectors that the sources ``names`` replace; those removed."""
    removed = []
    for name in names:
        default = REPLACES.get(name)
        if default is None:
            continue
        try:
            registry.unregister(default)
        except KeyError:  # not on this registry (a private one, or the user removed it)
            continue
        removed.append(default)
    return removed


def _give_back(registry: CollectorRegistry, collectors: Sequence[Collector]) -> None:
    for collector in collectors:
        try:
            registry.register(collector)
        except ValueError as exc:  # its names were taken meanwhile: leave them to their owner
            _guard.report("collectors.restore", exc)


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
    replaced = _take_over(runtime.registry, [source.name for source in sources])
    component = UseComponent(collector, runtime.registry, replaced)
    try:
        runtime.register(collector)
    except Exception:
        _give_back(runtime.registry, replaced)
        raise
    component.start()
    return component
