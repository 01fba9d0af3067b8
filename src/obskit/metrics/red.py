"""``@obskit.red``: rate, errors, duration (and calls in flight) for any callable, plus a span.

Families (see ``docs/metrics.md``):

* ``obskit_function_duration_seconds`` histogram, labels ``function, module, result, error_type``
  (+ the decorator's static ``labels``); ``result`` is ``ok`` or ``error``;
* ``obskit_function_calls_total`` counter with the same labels (the histogram's count, exposed
  under the name autometrics and OpenTelemetry's function conventions lead users to look for);
* ``obskit_function_active_calls`` gauge, labels ``function, module`` (+ static labels).

How the hot path stays cheap: a decorated function resolves its metric children once per runtime
(``init()``, ``shutdown()`` and forks drop them, see :mod:`obskit._caches`) and keeps them in a
small binding; a call then costs one ``is None`` test, two ``perf_counter`` reads, an atomic
in-flight increment/decrement and one histogram observation (a bisect and one uncontended lock).
Before ``init()``, or with obskit disabled, the wrapper only forwards the call. Spans are opened
only when a real tracer is installed: with the no-op tracer that code is not reached at all.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from contextvars import copy_context as _copy_context
from functools import partial
from time import perf_counter
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client.registry import CollectorRegistry

from obskit import _exemplars, _guard
from obskit._semconv import error_type
from obskit.context import CORRELATION_ID as _CORRELATION_ID
from obskit.context import NO_SNAPSHOT as _NO_SNAPSHOT
from obskit.context import STRUCTLOG_VARS as _structlog_vars
from obskit.context import current_fields as _current_fields
from obskit.context import end_unit as _end_unit
from obskit.context import new_id as _new_id
from obskit.context import set_fields as _set_fields
from obskit.context import structlog_snapshot as _structlog_snapshot
from obskit.metrics._binding import FUNCTION_BUCKETS, LABEL_NAME, RESERVED, Binding, Site
from obskit.metrics.use.event_loop import ensure_monitor as _ensure_loop_monitor

__all__ = ["FUNCTION_BUCKETS", "red"]

P = ParamSpec("P")
R = TypeVar("R")

# A call made outside any unit of work (no request, no outer decorated call) opens one: a fresh
# correlation id, and whatever it binds (obskit's fields, structlog's) ends with it. Inline in
# the wrappers (with the names imported above): a call inside a request pays one dict lookup.

# --- the traced path (a real tracer is installed): cost is dominated by the span itself ---------


class _Call:
    """One recorded call; ``with call:`` finishes it with the exception that left the block."""

    __slots__ = ()

    def finish(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        self.finish(exc)  # (returns None: an exception goes on to the caller)


class _TracedCall(_Call):
    __slots__ = ("binding", "span", "start", "token")

    def __init__(self, binding: Binding) -> None:
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
                    failure = error_type(exc)
                    span.set_attribute("error.type", failure)
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, failure))
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


def _wrap_sync(fn: Callable[P, R], site: Site) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        b = site.binding
        if b is None:  # the first call under this runtime
            b = site.rebind()
        if b.off:
            return fn(*args, **kwargs)
        outer = _current_fields()
        if _CORRELATION_ID in outer:
            unit = snapshot = None
        else:  # this call is a unit of work (see above)
            unit = _set_fields({**outer, _CORRELATION_ID: _new_id()})
            snapshot = (
                _copy_context()
                if _structlog_vars
                else _NO_SNAPSHOT
                if _structlog_vars is not None
                else _structlog_snapshot()
            )
        try:
            if b.tracer is not None:
                call = _begin(b)
                if call is None:
                    return fn(*args, **kwargs)
                with call:
                    return fn(*args, **kwargs)
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
        finally:
            if unit is not None:
                _end_unit(unit, snapshot)

    return wrapper


def _wrap_async(fn: Callable[P, Any], site: Site) -> Callable[P, Any]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        b = site.binding
        if b is None:
            b = site.rebind()
        if b.off:
            return await fn(*args, **kwargs)
        outer = _current_fields()
        if _CORRELATION_ID in outer:
            unit = snapshot = None
        else:  # this call is a unit of work (see above); it spans the awaited call
            unit = _set_fields({**outer, _CORRELATION_ID: _new_id()})
            snapshot = _structlog_snapshot()
        # A worker's loop may run no middleware: its lag is watched from here (one identity
        # check once the loop is known).
        _ensure_loop_monitor()
        try:
            if b.tracer is not None:
                call = _begin(b)
                if call is None:
                    return await fn(*args, **kwargs)
                with call:
                    return await fn(*args, **kwargs)
            b.enter()
            start = perf_counter()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _failed(b, exc, perf_counter() - start)
                raise
            _succeeded(b, perf_counter() - start)
            return result
        finally:
            if unit is not None:
                _end_unit(unit, snapshot)

    return wrapper


class _PlainCall(_Call):
    """The untraced path for generators: same recording as the inline sync path."""

    __slots__ = ("binding", "start")

    def __init__(self, binding: Binding) -> None:
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


def _begin(b: Binding) -> _PlainCall | _TracedCall | None:
    """Start recording one call; None (the call goes unrecorded) if obskit itself fails."""
    try:
        return _TracedCall(b) if b.tracer is not None else _PlainCall(b)
    except Exception as internal:
        _guard.report("metrics.red", internal)
        return None


def _failed(b: Binding, exc: BaseException, duration: float) -> None:
    try:
        b.leave()
        b.error_child(exc).observe(duration)
    except Exception as internal:
        _guard.report("metrics.red", internal)


def _succeeded(b: Binding, duration: float) -> None:
    try:
        b.leave()
        b.ok.observe(duration)
    except Exception as internal:
        _guard.report("metrics.red", internal)


def _wrap_generator(fn: Callable[P, Generator[Any, Any, Any]], site: Site) -> Callable[P, Any]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
        b = site.binding
        if b is None:
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
    fn: Callable[P, AsyncGenerator[Any, Any]], site: Site
) -> Callable[P, AsyncGenerator[Any, Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
        b = site.binding
        if b is None:
            b = site.rebind()
        inner = fn(*args, **kwargs)
        if not b.off:
            _ensure_loop_monitor()
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
    unchanged, counted with ``result="error"`` and ``error_type`` = the exception's fully
    qualified class name (``shop.Declined``; ``KeyError`` for a builtin, see ``obskit._semconv``),
    except those in ``ok_exceptions``. A call of a function or coroutine function made outside
    any request or other decorated call is a unit of work of its own: it gets a fresh
    correlation id, and what it binds (``obskit.bind``, structlog's ``bind_contextvars``) ends
    when it returns. ``name`` replaces the ``function`` label (default: the
    qualified name); ``labels`` adds static labels; ``registry`` records into that registry
    (even before ``init()``) instead of the runtime's.
    """
    if not isinstance(ok_exceptions, tuple) or not all(
        isinstance(e, type) and issubclass(e, BaseException) for e in ok_exceptions
    ):
        raise TypeError("ok_exceptions must be a tuple of exception classes")
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not LABEL_NAME.match(key) or key in RESERVED:
            raise ValueError(f"invalid or reserved label name {key!r} for @obskit.red")
        if not isinstance(value, str):
            raise TypeError(f"label {key!r} must have a str value, got {value!r}")

    def decorate(target: Any) -> Any:
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(decorate(target.__func__))
        site = Site(target, name, ok_exceptions, labels, registry)
        if inspect.isasyncgenfunction(target):
            return _wrap_async_generator(target, site)
        call_method = inspect.getattr_static(type(target), "__call__", None)  # async __call__?
        if inspect.iscoroutinefunction(target) or (
            not inspect.isfunction(target) and inspect.iscoroutinefunction(call_method)
        ):
            return _wrap_async(target, site)
        if inspect.isgeneratorfunction(target):
            return _wrap_generator(target, site)
        if not callable(target):
            raise TypeError(f"@obskit.red needs a callable, got {target!r}")
        return _wrap_sync(target, site)

    if fn is not None:
        return decorate(fn)
    return decorate
