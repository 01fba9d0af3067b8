"""Business events: the outcomes the business cares about, counted by name, outcome and tenant.

``obskit.business_event("checkout", success=ok)`` counts one outcome; without ``success`` it is
a decorator that counts each call of the function (``success`` when it returns, ``failure`` when
it raises)::

    obskit.business_event("checkout", success=payment.captured)

    @obskit.business_event("signup")
    async def sign_up(form): ...

    @obskit.business_event("search", success_if=lambda hits: bool(hits))
    def search(query): ...

One family, the contract the SLO objectives (business success) and the canary judge (business
conversion) read: ``obskit_business_events_total{event, outcome, tenant_id}`` with ``outcome``
``success`` or ``failure``. The tenant comes from the current context (or ``tenant_id=``) through
the runtime's cardinality guard, as on the HTTP families. Event names are code, not data: past
:data:`MAX_EVENTS` distinct names, further ones count as ``__other__`` (and in
``obskit_label_overflow_total{label="event"}``).

Like ``@obskit.red``: before ``init()`` (or with metrics off) nothing is recorded unless
``registry=`` names a registry; counts live in the runtime's sample store, so multi-process
servers aggregate them and a forked child starts afresh (its children are resolved again
whenever the live runtime changes, :mod:`obskit._caches`). Nothing here raises into the caller:
an internal failure is counted in ``obskit_internal_errors_total{component="metrics.business"}``.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar, overload

from prometheus_client.registry import CollectorRegistry

from obskit import _caches, _guard, _live, _locks, context
from obskit.metrics._store import OVERFLOW, Store
from obskit.metrics.cardinality import MAX_VALUE_LENGTH, CardinalityGuard
from obskit.metrics.catalogue import BUSINESS_EVENTS

__all__ = ["FAILURE", "FAMILY", "LABELS", "MAX_EVENTS", "SUCCESS", "business_event"]

P = ParamSpec("P")
R = TypeVar("R")

FAMILY: Final = BUSINESS_EVENTS.name
LABELS: Final = BUSINESS_EVENTS.labels
SUCCESS: Final = "success"
FAILURE: Final = "failure"
MAX_EVENTS: Final = 200
# Beyond this many (event, outcome, tenant) tuples the local lookup cache stops growing.
_CACHE_CAP: Final = 10_000


class _Events:
    """The family of one store, with its children cached per (event, outcome, tenant)."""

    def __init__(self, store: Store, guard: CardinalityGuard) -> None:
        self.store = store
        self.family = store.counter(FAMILY, BUSINESS_EVENTS.help, LABELS)
        self.guard = guard
        self.children: dict[tuple[str, str, str], Any] = {}
        self.names: set[str] = set()
        self.lock = _locks.lock()

    def record(self, event: str, outcome: str, tenant: str | None) -> None:
        # Guarded on every call, as the HTTP families do: a tenant admitted later gets its own
        # series from then on (its first events count under __other__).
        key = (event, outcome, self.guard(tenant) if tenant else "")
        child = self.children.get(key)
        if child is None:
            child = self._child(key)
        child.inc()

    def _child(self, key: tuple[str, str, str]) -> Any:
        event, outcome, tenant = key
        name = event if isinstance(event, str) else str(event)
        with self.lock:
            if name not in self.names:
                if len(self.names) >= MAX_EVENTS or not name or len(name) > MAX_VALUE_LENGTH:
                    name = OVERFLOW
                else:
                    self.names.add(name)
        if name == OVERFLOW:
            self.store.overflowed("event")
        child = self.family.labels(name, outcome, tenant)
        # A folded name is not cached: each further event under it is counted as overflow too.
        if name != OVERFLOW:
            with self.lock:
                if len(self.children) < _CACHE_CAP:
                    self.children[key] = child
        return child


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Events] = weakref.WeakKeyDictionary()
_lock = _locks.lock()


def _live_events() -> _Events | None:
    component = _live.metrics()
    runtime = _live.current()
    if component is None or runtime is None or runtime.disabled:
        return None
    return _Events(component.store, component.tenant_guard)


#: The runtime's business-event family (None before init() or with metrics off).
_runtime_events = _caches.Slot(_live_events).get


def _registry_events(registry: CollectorRegistry) -> _Events:
    component = _live.metrics()
    if component is not None and registry is component.registry:
        events = _runtime_events()
        if events is not None:
            return events
    with _lock:
        events = _by_registry.get(registry)
        if events is None:
            store = Store(overflow_family=False)
            registry.register(store)
            guard = CardinalityGuard("tenant_id", on_overflow=store.overflowed)
            events = _by_registry[registry] = _Events(store, guard)
        return events


def _record(
    event: str, outcome: str, tenant_id: str | None, registry: CollectorRegistry | None
) -> None:
    try:
        events = _runtime_events() if registry is None else _registry_events(registry)
        if events is None:
            return
        tenant = tenant_id if tenant_id is not None else context.current_fields().get("tenant_id")
        events.record(event, outcome, tenant)
    except Exception as exc:
        _guard.report("metrics.business", exc)


@overload
def business_event(
    event: str,
    success: bool,
    *,
    tenant_id: str | None = None,
    registry: CollectorRegistry | None = None,
) -> None: ...


@overload
def business_event(
    event: str,
    *,
    tenant_id: str | None = None,
    success_if: Callable[[Any], bool] | None = None,
    registry: CollectorRegistry | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def business_event(
    event: str,
    success: bool | None = None,
    *,
    tenant_id: str | None = None,
    success_if: Callable[[Any], bool] | None = None,
    registry: CollectorRegistry | None = None,
) -> Any:
    """Count one outcome of the business event ``event``, or decorate a function that is one.

    With ``success`` (true or false): counts one ``success`` or ``failure`` now. Without it:
    returns a decorator; each call of the decorated function (sync or async) counts a
    ``success`` when it returns (or, with ``success_if``, when ``success_if(result)`` is true)
    and a ``failure`` when it raises an ``Exception`` (re-raised unchanged; a cancellation is
    not an outcome and is not counted). ``tenant_id`` overrides the context's tenant;
    ``registry`` records into that registry instead of the runtime's (even before ``init()``).
    """
    if success is not None:
        _record(event, SUCCESS if success else FAILURE, tenant_id, registry)
        return None
    if not isinstance(event, str) or not event:
        raise ValueError(f"business_event needs a non-empty event name, got {event!r}")
    if success_if is not None and not callable(success_if):
        raise TypeError("success_if must be a callable taking the function's result")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError("@obskit.business_event decorates functions, not generators")
        if not callable(fn):
            raise TypeError(f"@obskit.business_event needs a callable, got {fn!r}")

        def outcome_of(result: Any) -> str:
            if success_if is None:
                return SUCCESS
            try:
                return SUCCESS if success_if(result) else FAILURE
            except Exception as exc:  # the user's predicate failed: count nothing, say so
                _guard.report("metrics.business.success_if", exc)
                return ""

        def done(outcome: str) -> None:
            if outcome:
                _record(event, outcome, tenant_id, registry)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    result = await fn(*args, **kwargs)
                except Exception:
                    done(FAILURE)
                    raise
                done(outcome_of(result))
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = fn(*args, **kwargs)
            except Exception:
                done(FAILURE)
                raise
            done(outcome_of(result))
            return result

        return wrapper

    return decorate
