"""@obskit.red opens a span only when a real tracer is installed, and offers exemplars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.openmetrics.exposition import generate_latest

import obskit
import obskit.testing
from obskit import _exemplars
from obskit.tracing import api as tracing_api


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of a plain SDK tracer that :func:`installed` puts in place of obskit's."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _providers[exporter] = provider
    try:
        yield exporter
    finally:
        provider.shutdown()


_providers: dict[InMemorySpanExporter, TracerProvider] = {}


@contextmanager
def installed(exporter: InMemorySpanExporter, **settings: Any) -> Iterator[obskit.testing.Capture]:
    """An isolated obskit whose tracer (installed by init()) is replaced by the plain SDK one."""
    with obskit.testing.isolated(**settings) as cap:
        previous = tracing_api.get_tracer()
        tracing_api.set_tracer(_providers[exporter].get_tracer("test"))
        try:
            yield cap
        finally:
            tracing_api.set_tracer(previous)


class Declined(Exception):
    """A user error."""


def test_span_per_call_with_error_status(spans: InMemorySpanExporter) -> None:
    """Each call makes one span named after the function; an error sets ERROR and error.type."""

    @obskit.red(name="checkout.pay")
    def pay(fail: bool) -> str:
        if fail:
            raise Declined
        return "ok"

    with installed(spans):
        pay(False)
        with pytest.raises(Declined):
            pay(True)
    finished = spans.get_finished_spans()
    assert ["checkout.pay", "checkout.pay"] == [s.name for s in finished]
    assert StatusCode.UNSET == finished[0].status.status_code
    assert StatusCode.ERROR == finished[1].status.status_code
    assert f"{__name__}.Declined" == (finished[1].attributes or {})["error.type"]


def test_ok_exception_leaves_span_unset(spans: InMemorySpanExporter) -> None:
    """An ok_exceptions exception does not mark the span as failed."""

    @obskit.red(ok_exceptions=(KeyError,))
    def lookup() -> None:
        raise KeyError

    with installed(spans), pytest.raises(KeyError):
        lookup()
    assert StatusCode.UNSET == spans.get_finished_spans()[0].status.status_code


def test_no_span_when_tracing_is_off(spans: InMemorySpanExporter) -> None:
    """With tracing=False no span is made even though a tracer is installed."""

    @obskit.red
    def quiet() -> None:
        return None

    with installed(spans, tracing=False):
        quiet()
    assert () == tuple(spans.get_finished_spans())


def test_exemplar_is_the_span_trace_id(spans: InMemorySpanExporter) -> None:
    """The duration observation carries the call's trace id as its OpenMetrics exemplar."""
    offered: list[int] = []

    class Recording:
        def offer(self, trace_id: int, apply: _exemplars.Apply) -> None:
            offered.append(trace_id)
            apply()

    @obskit.red(name="traced")
    def traced() -> None:
        return None

    with installed(spans) as cap:
        previous = _exemplars.gate
        _exemplars.set_gate(Recording())
        try:
            traced()
        finally:
            _exemplars.set_gate(previous)
        text = generate_latest(cap.registry).decode()
    trace_id = spans.get_finished_spans()[0].context.trace_id
    assert [trace_id] == offered
    assert f'trace_id="{trace_id:032x}"' in text


def test_no_span_work_with_the_noop_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    """With tracing on but the no-op tracer installed, the decorator never asks it for a span."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("span work with the no-op tracer")

    @obskit.red(name="noop")
    def job() -> int:
        return 1

    with obskit.testing.isolated(tracing=True) as cap:
        previous = tracing_api.get_tracer()
        tracing_api.set_tracer(None)
        monkeypatch.setattr(tracing_api.get_tracer(), "start_span", refuse)
        monkeypatch.setattr(tracing_api.get_tracer(), "start_as_current_span", refuse)
        try:
            assert 1 == job()
        finally:
            tracing_api.set_tracer(previous)
        labels = {"function": "noop", "module": __name__, "result": "ok", "error_type": ""}
        assert 1.0 == cap.sample("obskit_function_calls_total", labels)
