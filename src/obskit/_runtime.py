"""The live wiring: what ``init()`` builds, ``shutdown()`` tears down and a fork restarts.

One :class:`Runtime` exists at a time. Each part (logs, tracing, metrics, collectors) is a
:class:`Component`: started in order, shut down in reverse, told after a fork so it can restart
its threads in the child. ``generation`` changes with every (re)configuration so that cached
hot-path state (decorator metric children, for instance) knows when to rebuild.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry

from obskit import _guard, _locks
from obskit._config import Settings, load_settings
from obskit.logs import setup as log_setup

__all__ = ["Component", "Runtime", "current", "generation", "init", "reset", "shutdown"]

_log = logging.getLogger("obskit")


class Component(Protocol):
    """A part of the runtime with a lifecycle."""

    name: str

    def after_fork_in_child(self) -> None:
        """Re-create threads and per-process state in a forked child."""

    def shutdown(self, timeout: float) -> None:
        """Flush and stop within ``timeout`` seconds; never raise."""


# The parts wired by ``Runtime.start``, in this order: "module:function" building a component
# (or returning None when the settings leave it out). Tracing comes first so that metrics can
# ask it whether a trace is kept (exemplars); the metrics server comes last.
BUILDERS: tuple[tuple[str, str], ...] = (
    ("tracing", "obskit.tracing.wiring:build"),
    ("metrics", "obskit.metrics.wiring:build"),
    ("collectors", "obskit.metrics.use.wiring:build"),
    ("web", "obskit.web.wiring:build"),
)


def _load_builder(path: str) -> Callable[[Runtime], Component | None] | None:
    module_name, _, function = path.partition(":")
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
    except ModuleNotFoundError:  # the part is not built (yet) in this tree
        return None
    return getattr(importlib.import_module(module_name), function)  # type: ignore[no-any-return]


@dataclasses.dataclass
class Runtime:
    """Everything ``init()`` wired, reachable by the parts that need it."""

    settings: Settings
    registry: CollectorRegistry
    generation: int
    pid: int = dataclasses.field(default_factory=os.getpid)
    components: dict[str, Component] = dataclasses.field(default_factory=dict)
    # Collectors registered on ``registry`` by this runtime, unregistered on shutdown.
    collectors: list[Any] = dataclasses.field(default_factory=list)

    @property
    def disabled(self) -> bool:
        """Whether obskit was switched off (``OTEL_SDK_DISABLED``): every part is a no-op."""
        return self.settings.disabled

    def register(self, collector: Any) -> None:
        """Register a Prometheus collector on the runtime's registry, remembered for shutdown."""
        self.registry.register(collector)
        self.collectors.append(collector)

    def start(self) -> None:
        """Configure logs, then every component builder in order."""
        if self.disabled:
            return
        # The registry's lock (held by a scrape or a registration at a fork) is re-made in the
        # child too: obskit's scrapes and registrations there must not wait for ever.
        _locks.adopt(getattr(self.registry, "_lock", None))
        log_setup.configure(self.settings)
        if self.settings.metrics:
            self.register(_guard.InternalErrorCollector())
        for name, path in BUILDERS:
            try:
                builder = _load_builder(path)
                component = builder(self) if builder is not None else None
            except Exception as exc:
                _guard.report(f"init.{name}", exc)
                continue
            if component is not None:
                self.components[name] = component

    def close(self, timeout: float) -> None:
        """Shut components down in reverse order within ``timeout`` overall; never raises."""
        deadline = time.monotonic() + timeout
        for name, component in reversed(list(self.components.items())):
            remaining = max(0.0, deadline - time.monotonic())
            try:
                component.shutdown(remaining)
            except Exception as exc:
                _guard.report(f"shutdown.{name}", exc)
        self.components.clear()
        for collector in self.collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass
        self.collectors.clear()
        if not self.disabled:
            log_setup.unconfigure()


_lock = _locks.rlock()
_runtime: Runtime | None = None
_generation = 0
_fork_hook_installed = False


def current() -> Runtime | None:
    """The live runtime, or None before ``init()`` / after ``shutdown()``."""
    return _runtime


def generation() -> int:
    """Changes whenever the runtime is (re)built or torn down."""
    return _generation


def init(**kwargs: Any) -> Runtime:
    """Validate settings and wire everything; a repeat call with the same settings is a no-op."""
    global _runtime, _generation
    settings = load_settings(kwargs)
    with _lock:
        previous = _runtime
        if previous is not None and previous.pid == os.getpid():
            if previous.settings == settings and previous.settings.extras == settings.extras:
                return previous
            changed = _changed(previous.settings, settings)
            previous.close(timeout=5.0)
        else:
            changed = None
        _generation += 1
        registry = settings.extras.get("registry") or REGISTRY
        runtime = Runtime(settings=settings, registry=registry, generation=_generation)
        _runtime = runtime
        _install_fork_hook()
        runtime.start()
    if changed:
        _log.warning("obskit reconfigured; changed settings: %s", ", ".join(changed))
    return runtime


def _changed(old: Settings, new: Settings) -> list[str]:
    names = [f.name for f in dataclasses.fields(Settings) if f.compare]
    diff = [n for n in names if getattr(old, n) != getattr(new, n)]
    if old.extras != new.extras:
        diff.extend(
            sorted(
                set(old.extras) ^ set(new.extras)
                | {
                    k
                    for k in set(old.extras) & set(new.extras)
                    if old.extras[k] is not new.extras[k]
                }
            )
        )
    return diff


def shutdown(timeout: float = 5.0) -> None:
    """Decide and flush pending traces, stop threads and servers; returns within ``timeout``."""
    global _runtime, _generation
    with _lock:
        runtime, _runtime = _runtime, None
        _generation += 1
    if runtime is not None:
        runtime.close(timeout)


def reset() -> None:
    """Tear everything down quickly and forget it (``obskit.testing``)."""
    shutdown(timeout=2.0)
    _guard.reset()


def _after_fork_in_child() -> None:
    global _generation
    runtime = _runtime
    if runtime is None:
        return
    _generation += 1
    runtime.pid = os.getpid()
    for name, component in runtime.components.items():
        try:
            component.after_fork_in_child()
        except Exception as exc:
            _guard.report(f"fork.{name}", exc)


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    _fork_hook_installed = True
    # The hook holds no runtime: it looks up the live one (if any) in the child.
    os.register_at_fork(after_in_child=_after_fork_in_child)
