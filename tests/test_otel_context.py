"""obskit's one-call access to OpenTelemetry's current context behaves as the public API."""

from __future__ import annotations

import asyncio
import contextvars

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from obskit import _guard, _otel_context


def _span(n: int) -> trace.Span:
    return NonRecordingSpan(SpanContext(n, n, False, TraceFlags(1)))


def test_fast_path_is_taken_with_the_default_runtime_context() -> None:
    """With OpenTelemetry's default runtime context the current context is read in one call."""
    assert _otel_context._var is not None
    assert otel_context.get_current() is _otel_context.current()


def test_enter_span_and_leave_match_attach_and_detach() -> None:
    """A span entered is what get_current_span() returns; leaving restores the context as it was."""
    before = otel_context.get_current()
    outer = otel_context.attach(trace.set_span_in_context(_span(1)))
    try:
        token = _otel_context.enter_span(_span(2), None)
        assert 2 == trace.get_current_span().get_span_context().span_id
        assert 2 == _otel_context.current_span_or_none().get_span_context().span_id
        _otel_context.leave(token)
        assert 1 == trace.get_current_span().get_span_context().span_id
    finally:
        otel_context.detach(outer)
    assert before is otel_context.get_current()


def test_enter_span_over_a_given_parent_keeps_its_values() -> None:
    """Over an explicit parent context (a remote caller's), its other values stay visible."""
    key = otel_context.create_key("baggage-like")
    parent = otel_context.set_value(key, "kept", trace.set_span_in_context(_span(3)))
    token = _otel_context.enter_span(_span(4), parent)
    try:
        assert "kept" == otel_context.get_value(key)
        assert 4 == trace.get_current_span().get_span_context().span_id
    finally:
        _otel_context.leave(token)
    assert _otel_context.current_span_or_none() is None


def test_current_span_or_none_ignores_what_is_not_a_span() -> None:
    """A non-span under the span key reads as no span, as get_current_span() reads INVALID_SPAN."""
    ctx = otel_context.set_value(_otel_context.SPAN_KEY, "not a span")
    assert trace.INVALID_SPAN is trace.get_current_span(ctx)
    assert _otel_context.current_span_or_none(ctx) is None


def test_leaving_with_a_token_of_another_context_is_reported_not_raised() -> None:
    """A token made in another context (a framework switching contexts) never raises into the
    request; the failure is counted."""
    token = contextvars.copy_context().run(_otel_context.enter_span, _span(5), None)
    previous = _guard.set_strict(False)
    try:
        before = _guard.counts().get("tracing.context", 0)
        _otel_context.leave(token)
        assert before + 1 == _guard.counts().get("tracing.context", 0)
    finally:
        _guard.set_strict(previous)


def test_tasks_see_the_span_entered_before_they_start() -> None:
    """An asyncio task started inside the request sees the request's span, as with attach()."""

    async def main() -> int:
        token = _otel_context.enter_span(_span(6), None)
        try:
            return await asyncio.create_task(_current_span_id())
        finally:
            _otel_context.leave(token)

    async def _current_span_id() -> int:
        return trace.get_current_span().get_span_context().span_id

    assert 6 == asyncio.run(main())
