"""The never-raise guard: a failure inside obskit is counted, logged rarely, and swallowed.

Invariant 1 of the design: obskit never raises into user code. Every internal entry point that runs
on the user's path (a log processor, a span processor, a middleware step, a collector) routes its
own exceptions through :func:`report`. Counts are kept in plain integers so they exist before
``init()`` and survive a registry swap; ``obskit_internal_errors_total{component}`` exposes them.

Under obskit's own test suite the guard is *strict*: internal errors re-raise so tests see them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from obskit import _locks

__all__ = ["InternalErrorCollector", "counts", "guarded", "report", "reset", "set_strict"]

P = ParamSpec("P")
R = TypeVar("R")

LOG_INTERVAL_S = 60.0

_lock = _locks.rlock()
_counts: dict[str, int] = {}
_last_logged: dict[str, float] = {}
_strict = False
_reporting = threading.local()


def set_strict(strict: bool) -> bool:
    """Make internal errors re-raise (for obskit's own tests); returns the previous setting."""
    global _strict
    previous, _strict = _strict, strict
    return previous


def report(component: str, exc: BaseException) -> None:
    """Count ``exc`` against ``component`` and log it at most once a minute per component."""
    if getattr(_reporting, "active", False):
        return  # the report's own log line failed: the same failure echoing, counted already
    now = time.monotonic()
    with _lock:
        _counts[component] = _counts.get(component, 0) + 1
        due = now - _last_logged.get(component, -LOG_INTERVAL_S) >= LOG_INTERVAL_S
        if due:
            _last_logged[component] = now
    if _strict:
        raise exc
    if due:
        # The log chain may itself be what failed: never recurse into it.
        _reporting.active = True
        try:
            logging.getLogger("obskit.internal").warning(
                "obskit internal error in %s (further ones counted, logged once a minute)",
                component,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        except Exception:
            pass
        finally:
            _reporting.active = False


def guarded(component: str, default: R) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an internal function: its exceptions are reported and ``default`` returned."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report(component, exc)
                return default

        return wrapper

    return decorate


def counts() -> dict[str, int]:
    """A snapshot of internal error counts by component."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget counts and log times (``obskit.testing`` calls this between tests)."""
    with _lock:
        _counts.clear()
        _last_logged.clear()


class InternalErrorCollector(Collector):
    """Exposes ``obskit_internal_errors_total{component}`` from the guard's counts."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        from obskit.metrics.catalogue import INTERNAL_ERRORS

        family = CounterMetricFamily(
            INTERNAL_ERRORS.name, INTERNAL_ERRORS.help, labels=list(INTERNAL_ERRORS.labels)
        )
        for component, count in sorted(counts().items()):
            family.add_metric([component], count)
        yield family
