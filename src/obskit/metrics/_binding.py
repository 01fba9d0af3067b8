"""A decorated function's binding: which metric children and tracer a call records into.

A :class:`Site` is one function decorated with ``@obskit.red``; its :class:`Binding` holds the
children resolved for the live runtime, so a call never resolves labels. The families live in
the runtime's sample store (or in a store on the ``registry=`` given). Every site's binding is
dropped whenever the live runtime changes (one clear registered with :mod:`obskit._caches`); the
next call resolves it again.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import NoOpTracer
from prometheus_client.registry import CollectorRegistry

from obskit import _caches, _guard, _live, _locks
from obskit._semconv import error_type as _error_type
from obskit.metrics import catalogue
from obskit.metrics._store import OVERFLOW, Store
from obskit.metrics.catalogue import FUNCTION_BUCKETS
from obskit.tracing import api as tracing_api

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = ["BASE_LABELS", "FUNCTION_BUCKETS", "LABEL_NAME", "RESERVED", "Binding", "Site"]

DURATION = catalogue.FUNCTION_DURATION.name
CALLS = catalogue.FUNCTION_CALLS.name
ACTIVE = catalogue.FUNCTION_ACTIVE.name
BASE_LABELS = catalogue.FUNCTION_DURATION.labels
MAX_ERROR_TYPES = 50
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED = frozenset((*BASE_LABELS, "le"))


class _Null:
    """Stands in for metric children while metrics are off but spans are on."""

    def observe(self, value: float) -> None:
        return

    def exemplar(self, value: float, trace_id: int) -> None:
        return

    def enter(self) -> None:
        return

    def leave(self) -> None:
        return


_NULL = _Null()


class Binding:
    """What one decorated function records into under one runtime."""

    __slots__ = (
        "enter",
        "errors",
        "exemplars",
        "leave",
        "lock",
        "off",
        "ok",
        "site",
        "tracer",
        "values",
    )

    def __init__(self, site: Site) -> None:
        self.site = site
        self.off = True
        self.tracer: trace.Tracer | None = None
        self.exemplars = False
        self.ok: Any = _NULL
        self.enter: Callable[[], object] = _NULL.enter
        self.leave: Callable[[], object] = _NULL.leave
        self.errors: dict[type[BaseException], Any] = {}
        self.values: Any = None
        self.lock = _locks.lock()

    def error_child(self, exc: BaseException) -> Any:
        """The child an exception of this class is counted in (created on first sight)."""
        cls = type(exc)
        child = self.errors.get(cls)
        if child is not None:
            return child
        if self.values is None:
            return _NULL
        site = self.site
        if site.ok_exceptions and issubclass(cls, site.ok_exceptions):
            child = self.ok
        else:
            error_type = _error_type(exc) if len(self.errors) < MAX_ERROR_TYPES else OVERFLOW
            child = self.values.child((site.function, site.module, "error", error_type), site.extra)
        with self.lock:
            if len(self.errors) < MAX_ERROR_TYPES:
                self.errors[cls] = child
        return child


class _FunctionFamilies:
    """The decorator's families in ``store`` (declared once there: a second declare finds them).

    Not remembered per store here: a family refers to its store, so a store-keyed weak table of
    them would keep every runtime's store (and its children) alive for ever."""

    def __init__(self, store: Store) -> None:
        self.duration = store.declare(catalogue.FUNCTION_DURATION, count=catalogue.FUNCTION_CALLS)
        self.active = store.declare(catalogue.FUNCTION_ACTIVE)


_registry_stores: weakref.WeakKeyDictionary[CollectorRegistry, Store] = weakref.WeakKeyDictionary()
_families_lock = _locks.lock()


def _store_for(registry: CollectorRegistry | None, runtime: Runtime | None) -> Store | None:
    component = _live.metrics()
    if registry is None or (component is not None and registry is component.registry):
        return component.store if component is not None else None
    with _families_lock:
        store = _registry_stores.get(registry)
        if store is None:
            store = _registry_stores[registry] = Store(overflow_family=False)
            registry.register(store)
        return store


# Every decorated function, weakly (a function decorated at run time may go away), in a plain
# list: the clear below copies it in one step under the GIL and takes no lock (a shutdown from a
# signal handler runs it), while a WeakSet would raise if another thread added to it meanwhile.
# Only adding (under _families_lock) prunes the dead.
_sites: list[weakref.ref[Site]] = []
_pruned_at = 0


def _remember(site: Site) -> None:
    global _pruned_at
    with _families_lock:
        if len(_sites) >= 2 * _pruned_at + 64:
            _sites[:] = [ref for ref in _sites if ref() is not None]
            _pruned_at = len(_sites)
        _sites.append(weakref.ref(site))


@_caches.register
def _unbind_all() -> None:
    for ref in _sites[:]:
        site = ref()
        if site is not None:
            site.binding = None


class Site:
    """One decorated function: its identity, options, and current binding."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None,
        ok_exceptions: tuple[type[BaseException], ...],
        labels: Mapping[str, str] | None,
        registry: CollectorRegistry | None,
    ) -> None:
        # A callable object or a partial has no __qualname__ of its own: use its class's (a repr
        # could carry an address or arguments, i.e. a new label value per process).
        self.function = name or getattr(fn, "__qualname__", None) or type(fn).__qualname__
        self.module = getattr(fn, "__module__", None) or ""
        self.span_name = self.function
        self.attributes = {"code.function.name": f"{self.module}.{self.function}"}
        self.ok_exceptions = ok_exceptions
        self.extra = tuple(sorted((labels or {}).items()))
        self.registry = registry
        # None until the first call under a runtime (and again whenever that runtime changes).
        self.binding: Binding | None = None
        _remember(self)

    def rebind(self) -> Binding:
        """Resolve children (and the tracer) for the live runtime."""
        since = _caches.epoch
        binding = Binding(self)
        try:
            self._fill(binding)
        except Exception as exc:
            binding = Binding(self)  # off: the user's call proceeds unrecorded
            _guard.report("metrics.red", exc)
        _caches.keep(since, self, "binding", binding)
        return binding

    def _fill(self, binding: Binding) -> None:
        runtime = _live.current()
        if runtime is not None and runtime.disabled:
            return
        if runtime is not None and runtime.settings.tracing:
            tracer = tracing_api.get_tracer()
            if not isinstance(tracer, NoOpTracer):
                binding.tracer = tracer
        store = None
        if self.registry is not None or (runtime is not None and runtime.settings.metrics):
            store = _store_for(self.registry, runtime)
        if store is not None:
            families = _FunctionFamilies(store)
            binding.values = families.duration
            binding.ok = families.duration.child((self.function, self.module, "ok", ""), self.extra)
            active = families.active.child((self.function, self.module), self.extra)
            binding.enter, binding.leave = active.enter, active.leave
            binding.exemplars = runtime is not None and runtime.settings.exemplars
        binding.off = store is None and binding.tracer is None
