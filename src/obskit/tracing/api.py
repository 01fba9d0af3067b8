"""The tracer obskit's own spans come from (decorator, middleware, outbound calls)."""

from __future__ import annotations

from opentelemetry import trace

__all__ = ["get_tracer", "set_tracer"]

_NOOP = trace.NoOpTracer()
_tracer: trace.Tracer = _NOOP


def get_tracer() -> trace.Tracer:
    """obskit's tracer; a no-op tracer while tracing is off or obskit is not initialised."""
    return _tracer


def set_tracer(tracer: trace.Tracer | None) -> None:
    """Install the tracer built by ``init()`` (None restores the no-op tracer)."""
    global _tracer
    _tracer = tracer if tracer is not None else _NOOP
