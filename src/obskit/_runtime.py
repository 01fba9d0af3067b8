"""The live wiring: what ``init()`` builds, ``shutdown()`` tears down and a fork restarts.

One :class:`Runtime` exists at a time. Each part (logs, tracing, metrics, collectors) is a
:class:`Component`: started in order, shut down in reverse, told after a fork so it can restart
its threads in the child. Whatever the request path cached from a runtime (:mod:`obskit._caches`)
is emptied here whenever the live runtime changes, so it is rebuilt from the new one.

The parts are plain imports: a part missing from an installation fails ``import obskit._runtime``
(so ``obskit.init()``), never silently leaves tracing or metrics out. The parts themselves read the
live runtime from :mod:`obskit._live`, which this module writes; they never import this one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry

from obskit import _caches, _closing, _guard, _live, _locks, _preflight
from obskit._config import ConfigError, Settings, load_settings
from obskit._live import current
from obskit.logs import redaction
from obskit.logs import setup as log_setup
from obskit.metrics import wiring as metrics_wiring
from obskit.metrics.use import wiring as collectors_wiring
from obskit.tracing import wiring as tracing_wiring
from obskit.web import wiring as web_wiring

__all__ = [
    "BUILDERS",
    "EVERYTHING",
    "LIVE",
    "Component",
    "Part",
    "Runtime",
    "current",
    "init",
    "reset",
    "shutdown",
]

_log = logging.getLogger("obskit")


class Component(Protocol):
    """A part of the runtime with a lifecycle."""

    name: str

    def after_fork_in_child(self) -> None:
        """Re-create threads and per-process state in a forked child."""

    def shutdown(self, timeout: float) -> None:
        """Flush and stop within ``timeout`` seconds; never raise."""


@dataclasses.dataclass(frozen=True)
class Part:
    """One component ``init()`` builds: where its builder is and which settings shape it.

    A later ``init()`` rebuilds a part only when one of the settings it ``reads`` changed, or a
    part it is built ``after`` (and holds a reference into) was rebuilt; the others keep their
    state (RED counts, the tail sampler's pending traces, the metrics server's socket).
    """

    name: str
    builder: Callable[[Runtime], Component | None]  # None when the settings leave it out
    reads: frozenset[str]
    after: tuple[str, ...] = ()


IDENTITY = frozenset(
    {"service_name", "service_version", "environment", "vcs_revision", "resource_attributes"}
)
# A change to one of these rebuilds every part.
EVERYTHING = frozenset({"disabled", "registry"})
# Settings read afresh at every (re)configuration without rebuilding a part: logging is
# reconfigured in place; the middleware's request plan and the decorators' bindings are rebuilt
# from the new runtime (obskit._caches).
LIVE = frozenset(
    {
        "log_level",
        "log_format",
        "log_stream",
        "configure_logging",
        "redact",
        "redact_keys",
        "max_value_length",
        "redact_processor",
        "log_buffer_level",
        "log_quiet_loggers",
        "request_id_headers",
        "tenant_header",
        "tenant_from",
        "access_log",
        "exclude",
        "tracing",
        "metrics",
        "exemplars",
    }
)

# The parts wired by ``Runtime.start``, in this order. Tracing comes first so that metrics can
# ask it whether a trace is kept (exemplars); the USE collectors use the metrics part's shared
# files; the web part holds the metrics store and the tracer.
BUILDERS: tuple[Part, ...] = (
    Part(
        "tracing",
        tracing_wiring.build,
        IDENTITY
        | {
            "tracing",
            "sampling",
            "baseline_ratio",
            "slow_threshold_ms",
            "slow_per_route",
            "keep_rules",
            "keep_if",
            "trace_timeout_s",
            "max_traces",
            "max_spans_per_trace",
            "max_buffer_bytes",
            "otlp_endpoint",
            "otlp_protocol",
            "trace_sink",
            "trace_console",
            "span_exporter",
            "exemplars",
            "metrics",
            "log_level",
            "log_buffer_level",
        },
    ),
    Part(
        "metrics",
        metrics_wiring.build,
        IDENTITY
        | {
            "metrics",
            "metrics_port",
            "metrics_addr",
            "multiprocess_dir",
            "label_top_k",
            "label_allow",
            "exemplars",
        },
    ),
    Part(
        "collectors",
        collectors_wiring.build,
        frozenset({"metrics", "collectors"}),
        after=("metrics",),
    ),
    Part(
        "web",
        web_wiring.build,
        frozenset({"tracing", "metrics", "request_id_headers"}),
        after=("tracing", "metrics"),
    ),
)


@dataclasses.dataclass
class Runtime:
    """Everything ``init()`` wired, reachable by the parts that need it."""

    settings: Settings
    registry: CollectorRegistry
    pid: int = dataclasses.field(default_factory=os.getpid)
    components: dict[str, Component] = dataclasses.field(default_factory=dict)
    # Collectors registered on ``registry``, by the part that registered them (unregistered
    # when that part is shut down or rebuilt).
    owned: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    # The keyword arguments of every init() since the last shutdown(), later ones winning.
    given: dict[str, Any] = dataclasses.field(default_factory=dict)
    _building: str = "runtime"

    @property
    def disabled(self) -> bool:
        """Whether obskit was switched off (``OTEL_SDK_DISABLED``): every part is a no-op."""
        return self.settings.disabled

    @property
    def collectors(self) -> list[Any]:
        """Every collector the parts of this runtime registered (kept parts' included)."""
        return [collector for owned in self.owned.values() for collector in owned]

    def register(self, collector: Any) -> None:
        """Register a Prometheus collector on the runtime's registry, remembered for shutdown."""
        self.registry.register(collector)
        self.owned.setdefault(self._building, []).append(collector)

    def start(self) -> None:
        """Configure logs, then build every part not carried over from the previous runtime.

        A ``ConfigError`` from a builder (a setting found unusable only while building) is
        raised for ``init()`` to undo this runtime; any other failure of a part is counted and
        logged, and the rest of obskit is wired without it.
        """
        if self.disabled:
            return
        # The registry's lock (held by a scrape or a registration at a fork) is re-made in the
        # child too: obskit's scrapes and registrations there must not wait for ever.
        _locks.adopt(getattr(self.registry, "_lock", None))
        log_setup.configure(self.settings)
        for part in BUILDERS:
            if part.name in self.components:
                continue  # kept, with its state, from the previous runtime
            self._building = part.name
            try:
                if part.name == "metrics" and self.settings.metrics:
                    self.register(_guard.InternalErrorCollector())
                    self.register(redaction.RedactionCollector())
                component = part.builder(self)
            except ConfigError:
                raise
            except Exception as exc:
                _guard.report(f"init.{part.name}", exc)
                continue
            finally:
                self._building = "runtime"
            if component is not None:
                self.components[part.name] = component

    def close_parts(self, names: Collection[str], timeout: float, unregister: bool = True) -> None:
        """Shut the named parts down in reverse order within ``timeout``; never raises.

        With ``unregister`` their collectors leave the registry as each part is shut down.
        """
        deadline = time.monotonic() + timeout
        for part in reversed(BUILDERS):
            if part.name not in names:
                continue
            component = self.components.pop(part.name, None)
            if component is not None:
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    component.shutdown(remaining)
                except Exception as exc:
                    _guard.report(f"shutdown.{part.name}", exc)
            for collector in self.owned.pop(part.name, []) if unregister else ():
                try:
                    self.registry.unregister(collector)
                except KeyError:
                    pass

    def detach(self) -> None:
        """Make the components unreachable to new work, without waiting on anything.

        Runs in ``shutdown()``'s caller, which may be a signal handler: each component's
        ``detach`` (when it has one) only resets what it installed (tracer, gates), lock-free.
        """
        for name, component in reversed(list(self.components.items())):
            detach = getattr(component, "detach", None)
            if detach is None:
                continue
            try:
                detach()
            except Exception as exc:
                _guard.report(f"shutdown.{name}", exc)

    def close(self, timeout: float) -> None:
        """Shut every part down within ``timeout``, then take the collectors off; never raises.

        Tracing goes first (the pending traces are what a late close loses), the others in
        reverse order; nothing waits on the registry's lock (a scrape's, or the interrupted
        thread's) before the traces are out.
        """
        deadline = time.monotonic() + timeout
        self.close_parts(["tracing"], timeout, unregister=False)
        others = [part.name for part in BUILDERS if part.name != "tracing"]
        self.close_parts(others, max(0.0, deadline - time.monotonic()), unregister=False)
        self.unregister()
        # A close that finished late (see obskit._closing) leaves the logging of a runtime
        # built since then alone.
        with _lock:
            if not self.disabled and _live.runtime in (None, self):
                log_setup.unconfigure()
        if self in _closing_runtimes:
            _closing_runtimes.remove(self)

    def unregister(self) -> None:
        """Take this runtime's collectors off its registry (once, whoever calls it first)."""
        owned, self.owned = self.owned, {}
        for collectors in owned.values():
            for collector in collectors:
                try:
                    self.registry.unregister(collector)
                except KeyError:
                    pass


_lock = _locks.rlock()
# Runtimes shutdown() took out whose close has not finished (it may outlast its deadline).
_closing_runtimes: list[Runtime] = []
_fork_hook_installed = False


def init(**kwargs: Any) -> Runtime:
    """Validate settings and wire what they change; a repeat call naming nothing new is a no-op.

    Keyword arguments accumulate over calls until ``shutdown()``: a later call changes what it
    names and keeps the rest. Everything that can be checked is checked before anything is
    touched, so a ``ConfigError`` leaves the previous runtime (if any) exactly as it was. A
    setting found unusable only while building (rare: the metrics port taken between the check
    and the bind) undoes the new runtime and leaves obskit uninitialised, as after shutdown().
    """
    _closing.wait()  # a shutdown still closing the previous runtime: until its deadline
    for stale in list(_closing_runtimes):  # one that outlasted it: its collectors go now
        stale.unregister()
    with _lock:
        live = _live.runtime
        previous = live if live is not None and live.pid == os.getpid() else None
        given = {**(live.given if live is not None else {})}
        given.update({key: value for key, value in kwargs.items() if value is not None})
        settings = load_settings(given)
        if previous is not None and not _changed(previous.settings, settings):
            previous.given = given
            return previous
        changed = _changed(previous.settings, settings) if previous is not None else []
        rebuild = _to_rebuild(previous, changed)
        _preflight.check(settings, port="metrics" in rebuild and not _serves(previous, settings))
        kept: dict[str, Component] = {}
        owned: dict[str, list[Any]] = {}
        if previous is not None:
            previous.close_parts(rebuild, timeout=5.0)
            kept, owned = dict(previous.components), dict(previous.owned)
        registry = settings.extras.get("registry") or REGISTRY
        runtime = Runtime(
            settings=settings,
            registry=registry,
            components=kept,
            owned=owned,
            given=given,
        )
        _live.runtime = runtime
        # Nothing the request path derived from the previous runtime is used from here on...
        _caches.clear(_caches.RUNTIME)
        _install_fork_hook()
        try:
            runtime.start()
        except ConfigError:
            _live.runtime = None
            _caches.clear(_caches.RUNTIME)
            runtime.close(timeout=2.0)
            raise
        # ... nor what a request derived from this one while its parts were being built.
        _caches.clear(_caches.RUNTIME)
    for notice in settings.notices:
        _log.warning("obskit: %s", notice)
    if previous is not None:
        _log.warning(
            "obskit reconfigured: %s (rebuilt: %s; kept: %s)",
            "; ".join(_describe(name, previous.settings, settings) for name in changed),
            ", ".join(name for name in _PART_NAMES if name in rebuild) or "nothing",
            ", ".join(name for name in _PART_NAMES if name not in rebuild) or "nothing",
        )
    return runtime


_PART_NAMES = tuple(part.name for part in BUILDERS)


def _to_rebuild(previous: Runtime | None, changed: Collection[str]) -> set[str]:
    """The parts a change of ``changed`` settings rebuilds (all of them for a first init)."""
    if previous is None or previous.disabled or EVERYTHING & set(changed):
        return set(_PART_NAMES)
    rebuild: set[str] = set()
    for part in BUILDERS:
        if part.reads & set(changed) or rebuild & set(part.after):
            rebuild.add(part.name)
    return rebuild


def _serves(previous: Runtime | None, settings: Settings) -> bool:
    """Whether the previous runtime's metrics server holds the address the new one binds."""
    server = getattr(previous.components.get("metrics"), "server", None) if previous else None
    return server is not None and (server.addr, server.port) == (
        settings.metrics_addr,
        settings.metrics_port,
    )


def _changed(old: Settings, new: Settings) -> list[str]:
    names = [f.name for f in dataclasses.fields(Settings) if f.compare]
    diff = [n for n in names if getattr(old, n) != getattr(new, n)]
    diff.extend(
        sorted(
            key
            for key in set(old.extras) | set(new.extras)
            if old.extras.get(key) is not new.extras.get(key)
        )
    )
    return diff


def _describe(name: str, old: Settings, new: Settings) -> str:
    """``name: old → new`` for the reconfiguration line (objects by type, URLs without secrets)."""
    if name in old.extras or name in new.extras:
        before, after = old.extras.get(name), new.extras.get(name)
        return f"{name}: {_object(before)} → {_object(after)}"
    return f"{name}: {_shown(getattr(old, name))} → {_shown(getattr(new, name))}"


def _object(value: Any) -> str:
    return "unset" if value is None else f"<{type(value).__name__}>"


def _shown(value: Any) -> str:
    if isinstance(value, str) and "@" in value and "://" in value:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.username or parts.password:
            value = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return "unset" if value is None else repr(value)


def shutdown(timeout: float = 5.0) -> None:
    """Decide and flush pending traces, stop threads and servers; returns within ``timeout``.

    From any thread, and from a signal handler: the work runs on a thread of its own
    (:mod:`obskit._closing`) that the caller waits for until the deadline at most. A caller that
    interrupted obskit inside one of its locks (a signal handler on that thread) does not wait:
    the work goes on as soon as the interrupted code releases the lock, by the same deadline
    (and an exit waits for it, as long as the deadline allows).
    """
    deadline = time.monotonic() + max(0.0, timeout)
    interrupted = _locks.held_here()
    runtime: Runtime | None = None
    taken = False
    # The runtime lock is held for the length of an init() (possibly by this very thread, in a
    # signal handler that interrupted it): take the runtime out here only if that is quick.
    if not _locks.owned(_lock) and _lock.acquire(timeout=0.0 if interrupted else timeout):
        try:
            runtime, taken = _take(), True
        finally:
            _lock.release()
    if runtime is not None:
        runtime.detach()  # lock-free: no new span, exemplar or held line reaches it from now
    elif taken:  # nothing live: wait for a shutdown still closing, like the one it finishes
        if not interrupted:
            _closing.wait(deadline)
        return

    # The work stops waiting a little before the caller does: what it could not finish is
    # counted and logged by then (see the export lanes' shutdown).
    margin = min(0.25, 0.1 * max(0.0, timeout))

    def work(deadline: float) -> None:
        deadline -= margin
        live = runtime
        if not taken:
            if not _lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                _log.warning("obskit shutdown: init() still running at the deadline; not closed")
                return
            try:
                live = _take()
            finally:
                _lock.release()
            if live is not None:
                live.detach()
        if live is not None:
            live.close(max(0.0, deadline - time.monotonic()))

    _closing.run(work, deadline, wait=not interrupted)


def _take() -> Runtime | None:
    """Take the live runtime out (under ``_lock``): later calls find none."""
    runtime, _live.runtime = _live.runtime, None
    _caches.clear(_caches.RUNTIME)
    if runtime is not None:
        _closing_runtimes.append(runtime)
    return runtime


def reset(*, keep_registered: bool = False) -> None:
    """Tear everything down quickly and forget it (``obskit.testing``).

    Also the internal-error counts and, unless ``keep_registered``, what outlives a runtime
    (:data:`obskit._caches.PROCESS`: the tracked executors, pools and queues, the loops named to
    ``monitor_event_loop``).
    """
    shutdown(timeout=2.0)
    _caches.clear(_caches.RUNTIME) if keep_registered else _caches.clear()
    _guard.reset()
    redaction.reset()


def _after_fork_in_child() -> None:
    runtime = _live.runtime
    if runtime is None:
        return
    runtime.pid = os.getpid()
    for name, component in runtime.components.items():
        try:
            component.after_fork_in_child()
        except Exception as exc:
            _guard.report(f"fork.{name}", exc)
    # The parts re-made their per-process state (a metric store its children): what the request
    # path cached from them is stale in the child.
    _caches.clear(_caches.RUNTIME)


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    _fork_hook_installed = True
    # The hook holds no runtime: it looks up the live one (if any) in the child.
    os.register_at_fork(after_in_child=_after_fork_in_child)
