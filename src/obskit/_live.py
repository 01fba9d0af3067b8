"""Which runtime is live, and its parts: the one record every part of obskit reads.

:mod:`obskit._runtime` builds the parts and is the only writer here; the parts import this module
(never ``_runtime``, which imports them), so the builders are plain imports without a cycle.

What the request path caches from the live runtime is emptied by ``_runtime`` whenever the runtime
changes (:mod:`obskit._caches`); nothing here needs to be compared on every call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from obskit._runtime import Runtime
    from obskit.metrics._store import Store
    from obskit.metrics.wiring import MetricsComponent

__all__ = ["collectors", "current", "metrics", "metrics_store", "part", "runtime"]

#: The live runtime (None before ``init()`` and after ``shutdown()``).
runtime: Runtime | None = None


def current() -> Runtime | None:
    """The live runtime, or None before ``init()`` / after ``shutdown()``."""
    return runtime


def collectors() -> list[Any]:
    """The collectors of the live runtime (a part kept across init() calls reads it anew)."""
    live = runtime
    return live.collectors if live is not None else []


def part(name: str) -> Any:
    """The live runtime's component ``name`` (``tracing``, ``metrics``, ...), or None."""
    live = runtime
    return live.components.get(name) if live is not None else None


def metrics() -> MetricsComponent | None:
    """The live runtime's metrics part, or None (before ``init()``, or with metrics off)."""
    component: MetricsComponent | None = part("metrics")
    return component


def metrics_store() -> Store | None:
    """The live runtime's sample store (for families built by other parts), or None."""
    component = metrics()
    return component.store if component is not None else None
