"""``@obskit.red``: rate, errors, duration (and calls in flight) for any callable, plus a span.

Families (see ``docs/metrics.md``):

* ``obskit_function_duration_seconds`` histogram, labels ``function, module, result, error_type``
  (+ the decorator's static ``labels``); ``result`` is ``ok`` or ``error``;
* ``obskit_function_calls_total`` counter with the same labels (the histogram's count, exposed
  under the name autometrics and OpenTelemetry's function conventions lead users to look for);
* ``obskit_function_active_calls`` gauge, labels ``function, module`` (+ static labels).

How the hot path stays cheap: a decorated function resolves its metric children once per runtime
*generation* (``init()``, ``shutdown()`` and forks bump it) and keeps them in a small binding; a
call then costs one integer comparison, two ``perf_counter`` reads, an atomic in-flight
increment/decrement and one histogram observation (a bisect and one uncontended lock). Before
``init()``, or with obskit disabled, the wrapper only forwards the call. Spans are opened only when
a real tracer is installed: with the no-op tracer that code is not reached at all.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from functools import partial
from time import perf_counter
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, Status, StatusCode
from prometheus_client.registry import CollectorRegistry

from obskit import _exemplars, _guard
from obskit import _runtime as _rt
from obskit.metrics._store import OVERFLOW, Store
from obskit.tracing import api as tracing_api

__all__ = ["FUNCTION_BUCKETS", "red"]

P = ParamSpec("P")
R = TypeVar("R")

DURATION = "obskit_function_duration_seconds"
CALLS = "obskit_function_calls"
ACTIVE = "obskit_function_active_calls"
BASE_LABELS = ("function", "module", "result", "error_type")
# Functions run faster than requests: the semconv request buckets, extended down to 100 µs.
FUNCTION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
MAX_ERROR_TYPES = 50
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED = frozenset((*BASE_LABELS, "le"))


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


class _Binding:
    """What one decorated function records into during one runtime generation."""

    __slots__ = (
        "enter",
        "errors",
        "exemplars",
        "generation",
        "leave",
        "lock",
        "off",
        "ok",
        "site",
        "tracer",
        "values",
    )

    def __init__(self, site: _Site, generation: int) -> None:
        self.site = site
        self.generation = generation
        self.off = True
        self.tracer: trace.Tracer | None = None
        self.exemplars = False
        self.ok: Any = _NULL
        self.enter: Callable[[], object] = _NULL.enter
        self.leave: Callable[[], object] = _NULL.leave
        self.errors: dict[type[BaseException], Any] = {}
        self.values: Any = None
        self.lock = threading.Lock()

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
            error_type = cls.__name__ if len(self.errors) < MAX_ERROR_TYPES else OVERFLOW
            child = self.values.child((site.function, site.module, "error", error_type), site.extra)
        with self.lock:
            if len(self.errors) < MAX_ERROR_TYPES:
                self.errors[cls] = child
        return child


class _FunctionFamilies:
    def __init__(self, store: Store) -> None:
        self.duration = store.histogram(
            DURATION,
            "Duration of calls to functions decorated with @obskit.red.",
            BASE_LABELS,
            FUNCTION_BUCKETS,
            count_name=CALLS,
            count_documentation="Calls to functions decorated with @obskit.red, by result.",
        )
        self.active = store.gauge(
            ACTIVE,
            "Calls to functions decorated with @obskit.red in flight.",
            ("function", "module"),
        )


_families: weakref.WeakKeyDictionary[Store, _FunctionFamilies] = weakref.WeakKeyDictionary()
_registry_stores: weakref.WeakKeyDictionary[CollectorRegistry, Store] = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def _families_of(store: Store) -> _FunctionFamilies:
    with _families_lock:
        families = _families.get(store)
        if families is None:
            families = _families[store] = _FunctionFamilies(store)
        return families


def _store_for(registry: CollectorRegistry | None, runtime: _rt.Runtime | None) -> Store | None:
    from obskit.metrics import wiring

    component = wiring.current()
    if registry is None or (component is not None and registry is component.registry):
        return component.store if component is not None else None
    with _families_lock:
        store = _registry_stores.get(registry)
        if store is None:
            store = _registry_stores[registry] = Store(overflow_family=False)
            registry.register(store)
        return store


class _Site:
    """One decorated function: its identity, options, and current binding."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None,
        ok_exceptions: tuple[type[BaseException], ...],
        labels: Mapping[str, str] | None,
        registry: CollectorRegistry | None,
    ) -> None:
        self.function = name or getattr(fn, "__qualname__", None) or repr(fn)
        self.module = getattr(fn, "__module__", None) or ""
        self.span_name = self.function
        self.attributes = {"code.function.name": f"{self.module}.{self.function}"}
        self.ok_exceptions = ok_exceptions
        self.extra = tuple(sorted((labels or {}).items()))
        self.registry = registry
        self.binding = _Binding(self, -1)

    def rebind(self) -> _Binding:
        """Resolve children (and the tracer) for the current runtime generation."""
        generation = _rt._generation
        binding = _Binding(self, generation)
        try:
            self._fill(binding)
        except Exception as exc:
            binding = _Binding(self, generation)  # off: the user's call proceeds unrecorded
            _guard.report("metrics.red", exc)
        self.binding = binding
        return binding

    def _fill(self, binding: _Binding) -> None:
        runtime = _rt.current()
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
            families = _families_of(store)
            binding.values = families.duration
            binding.ok = families.duration.child((self.function, self.module, "ok", ""), self.extra)
            active = families.active.child((self.function, self.module), self.extra)
            binding.enter, binding.leave = active.enter, active.leave
            binding.exemplars = runtime is not None and runtime.settings.exemplars
        binding.off = store is None and binding.tracer is None


# --- the traced path (a real tracer is installed): cost is dominated by the span itself ---------


class _TracedCall:
    __slots__ = ("binding", "span", "start", "token")

    def __init__(self, binding: _Binding) -> None:
        site = binding.site
        assert binding.tracer is not None
        self.binding = binding
        self.span = binding.tracer.start_span(site.span_name, attributes=site.attributes)
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        binding.enter()
        self.start = perf_counter()

    def finish(self, exc: BaseException | None) -> None:
        duration = perf_counter() - self.start
        binding, span = self.binding, self.span
        try:
            binding.leave()
            if exc is None:
                child = binding.ok
            else:
                child = binding.error_child(exc)
                if child is not binding.ok:
                    span.set_attribute("error.type", type(exc).__name__)
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            child.observe(duration)
            if binding.exemplars:
                trace_id = span.get_span_context().trace_id
                if trace_id:
                    _exemplars.gate.offer(trace_id, partial(child.exemplar, duration, trace_id))
        except Exception as internal:
            _guard.report("metrics.red", internal)
        finally:
            try:
                otel_context.detach(self.token)
                span.end()
            except Exception as internal:
                _guard.report("metrics.red", internal)


# --- wrappers, one per kind of callable --------------------------------------------------------


def _wrap_sync(fn: Callable[P, R], site: _Site) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        b = site.binding
        if b.generation != _rt._generation:  # the global itself: a function call costs more
            b = site.rebind()
        if b.off:
            return fn(*args, **kwargs)
        if b.tracer is not None:
            call = _begin(b)
            if call is None:
                return fn(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
            call.finish(None)
            return result
        # The untraced path, inline: this is the one the benchmark measures. ``enter`` and
        # ``leave`` are C-level counters; observe() is a bisect and one uncontended lock.
        b.enter()
        start = perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _failed(b, exc, perf_counter() - start)
            raise
        duration = perf_counter() - start
        try:
            b.leave()
            b.ok.observe(duration)
        except Exception as internal:
            _guard.report("metrics.red", internal)
        return result

    return wrapper


def _wrap_async(fn: Callable[P, Any], site: _Site) -> Callable[P, Any]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        b = site.binding
        if b.generation != _rt._generation:
            b = site.rebind()
        if b.off:
            return await fn(*args, **kwargs)
        if b.tracer is not None:
            call = _begin(b)
            if call is None:
                return await fn(*args, **kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
            call.finish(None)
            return result
        b.enter()
        start = perf_counter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _failed(b, exc, perf_counter() - start)
            raise
        _succeeded(b, perf_counter() - start)
        return result

    return wrapper


class _PlainCall:
    """The untraced path for generators: same recording as the inline sync path."""

    __slots__ = ("binding", "start")

    def __init__(self, binding: _Binding) -> None:
        self.binding = binding
        binding.enter()
        self.start = perf_counter()

    def finish(self, exc: BaseException | None) -> None:
        duration = perf_counter() - self.start
        b = self.binding
        try:
            b.leave()
            (b.ok if exc is None else b.error_child(exc)).observe(duration)
        except Exception as internal:
            _guard.report("metrics.red", internal)


def _begin(b: _Binding) -> _PlainCall | _TracedCall | None:
    """Start recording one call; None (the call goes unrecorded) if obskit itself fails."""
    try:
        return _TracedCall(b) if b.tracer is not None else _PlainCall(b)
    except Exception as internal:
        _guard.report("metrics.red", internal)
        return None


def _failed(b: _Binding, exc: BaseException, duration: float) -> None:
    try:
        b.leave()
        b.error_child(exc).observe(duration)
    except Exception as internal:
        _guard.report("metrics.red", internal)


def _succeeded(b: _Binding, duration: float) -> None:
    try:
        b.leave()
        b.ok.observe(duration)
    except Exception as internal:
        _guard.report("metrics.red", internal)


def _wrap_generator(fn: Callable[P, Generator[Any, Any, Any]], site: _Site) -> Callable[P, Any]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
        b = site.binding
        if b.generation != _rt._generation:
            b = site.rebind()
        if b.off:
            return (yield from fn(*args, **kwargs))
        # Timed from the first next() (when the body starts) until exhausted, failed or closed;
        # a generator abandoned half-way is closed by the garbage collector: recorded once.
        call = _begin(b)
        if call is None:
            return (yield from fn(*args, **kwargs))
        try:
            result = yield from fn(*args, **kwargs)
        except GeneratorExit:
            call.finish(None)
            raise
        except BaseException as exc:
            call.finish(exc)
            raise
        call.finish(None)
        return result

    return wrapper


def _wrap_async_generator(
    fn: Callable[P, AsyncGenerator[Any, Any]], site: _Site
) -> Callable[P, AsyncGenerator[Any, Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
        b = site.binding
        if b.generation != _rt._generation:
            b = site.rebind()
        inner = fn(*args, **kwargs)
        call = None if b.off else _begin(b)
        try:
            sent: Any = None
            while True:
                try:
                    item = await inner.asend(sent)
                except StopAsyncIteration:
                    break
                while True:
                    try:
                        sent = yield item
                        break
                    except GeneratorExit:
                        raise
                    except BaseException as thrown:  # athrow() into the wrapper: pass it on
                        try:
                            item = await inner.athrow(thrown)
                        except StopAsyncIteration:
                            sent = _DONE
                            break
                if sent is _DONE:
                    break
        except GeneratorExit:
            await inner.aclose()
            if call is not None:
                call.finish(None)
            raise
        except BaseException as exc:
            if call is not None:
                call.finish(exc)
            raise
        if call is not None:
            call.finish(None)

    return wrapper


_DONE = object()


# --- the decorator -----------------------------------------------------------------------------


@overload
def red(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def red(
    *,
    name: str | None = None,
    ok_exceptions: tuple[type[BaseException], ...] = (),
    labels: Mapping[str, str] | None = None,
    registry: CollectorRegistry | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def red(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    ok_exceptions: tuple[type[BaseException], ...] = (),
    labels: Mapping[str, str] | None = None,
    registry: CollectorRegistry | None = None,
) -> Any:
    """Record rate, errors and duration of every call (and open a span when tracing is on).

    Works on functions, coroutine functions, generators and async generators (timed until
    exhausted or closed), methods, classmethods and staticmethods. The wrapper keeps the
    signature, docstring and kind of the function. The function's own exceptions are re-raised
    unchanged, counted with ``result="error"`` and ``error_type`` = the exception class name,
    except those in ``ok_exceptions``. ``name`` replaces the ``function`` label (default: the
    qualified name); ``labels`` adds static labels; ``registry`` records into that registry
    (even before ``init()``) instead of the runtime's.
    """
    if not isinstance(ok_exceptions, tuple) or not all(
        isinstance(e, type) and issubclass(e, BaseException) for e in ok_exceptions
    ):
        raise TypeError("ok_exceptions must be a tuple of exception classes")
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not _LABEL_NAME.match(key) or key in _RESERVED:
            raise ValueError(f"invalid or reserved label name {key!r} for @obskit.red")
        if not isinstance(value, str):
            raise TypeError(f"label {key!r} must have a str value, got {value!r}")

    def decorate(target: Any) -> Any:
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(decorate(target.__func__))
        site = _Site(target, name, ok_exceptions, labels, registry)
        if inspect.isasyncgenfunction(target):
            return _wrap_async_generator(target, site)
        if inspect.iscoroutinefunction(target):
            return _wrap_async(target, site)
        if inspect.isgeneratorfunction(target):
            return _wrap_generator(target, site)
        if not callable(target):
            raise TypeError(f"@obskit.red needs a callable, got {target!r}")
        return _wrap_sync(target, site)

    if fn is not None:
        return decorate(fn)
    return decorate
