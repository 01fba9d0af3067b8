"""obskit's own work stays out of the signals it produces.

Exporting kept spans, and every HTTP call obskit makes for itself (deploy markers, Prometheus and
Alertmanager queries by the SLO, canary and incident tools), must produce no span, no metric, no
buffered log line and no propagation header. Otherwise an export that fails is an error trace
that is kept, exported, fails again, and so on for ever.

OpenTelemetry's answer is a context key that instrumentations check before they record anything:
``opentelemetry.context._SUPPRESS_INSTRUMENTATION_KEY`` (set by the SDK's own batch processors
while they export). :func:`quiet` sets it, together with the plain ``"suppress_instrumentation"``
key that older contrib instrumentations read, and takes the current span and baggage out of the
context, so nothing inside is parented to (or buffered with) the request that happened to be
running. obskit's outbound patches honour the key (:func:`suppressed`), so other exporters that set
it are spared too.

Use it around obskit's own HTTP calls::

    from obskit._selfcalls import quiet

    with quiet():
        httpx.get(prometheus_url + "/api/v1/query", params=...)

A thread does not inherit the context of the thread that started it: a thread of obskit's that
makes calls enters :func:`quiet` itself (the span export worker does, for its whole life).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from obskit import _otel_context
from obskit._compat import otel as otel_compat

__all__ = ["SUPPRESS_KEYS", "quiet", "quiet_context", "quietly", "suppressed"]

# The API's key (a unique string made at import), the contrib instrumentations' legacy plain
# key, and the API's "HTTP instrumentation suppressed" key (see obskit._compat.otel).
_SUPPRESS: Final = otel_compat.SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESS_PLAIN: Final = "suppress_instrumentation"
_SUPPRESS_HTTP: Final = otel_compat.SUPPRESS_HTTP_INSTRUMENTATION_KEY
_SUPPRESS_HTTP_KEY: Final = _SUPPRESS_HTTP or _SUPPRESS_PLAIN
#: Every key whose true value means "record nothing for this HTTP call".
SUPPRESS_KEYS: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(k for k in (_SUPPRESS, _SUPPRESS_PLAIN, _SUPPRESS_HTTP) if k is not None)
)
_current = _otel_context.current
_F = TypeVar("_F", bound=Callable[..., Any])


def suppressed() -> bool:
    """Whether instrumentation is suppressed in the current context (one context lookup)."""
    ctx = _current()
    if not ctx:  # the usual case outside a span: an empty context
        return False
    return bool(ctx.get(_SUPPRESS) or ctx.get(_SUPPRESS_PLAIN) or ctx.get(_SUPPRESS_HTTP_KEY))


def quiet_context(parent: Context | None = None) -> Context:
    """``parent`` (default: the current context) without span or baggage, with instrumentation
    suppressed."""
    ctx = trace.set_span_in_context(trace.INVALID_SPAN, parent)
    ctx = otel_baggage.clear(ctx)
    ctx = otel_context.set_value(_SUPPRESS, True, ctx)
    return otel_context.set_value(_SUPPRESS_PLAIN, True, ctx)


@contextmanager
def quiet() -> Iterator[None]:
    """Run the block as obskit's own work: no span, metric, buffered log line or header."""
    token = otel_context.attach(quiet_context())
    try:
        yield
    finally:
        otel_context.detach(token)


def quietly(function: _F) -> _F:
    """Decorate a function (a thread's target, a coroutine function) so that every run of it is
    :func:`quiet`."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with quiet():
                return await function(*args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with quiet():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
