"""HTTP server families: semconv names and labels, cached children, tenant guard, exemplars."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import pytest
from prometheus_client.openmetrics.exposition import generate_latest

import obskit.testing
from obskit import _exemplars
from obskit.metrics.http import server_metrics
from obskit.web.streams import stream_metrics

DURATION = "http_server_request_duration_seconds"


def _labels(**extra: str) -> dict[str, str]:
    labels = {
        "http_request_method": "GET",
        "url_scheme": "http",
        "http_route": "/items/{id}",
        "http_response_status_code": "200",
        "error_type": "",
        "tenant_id": "",
    }
    labels.update(extra)
    return labels


def test_no_families_before_init() -> None:
    """server_metrics() is None while obskit is not initialised."""
    assert server_metrics() is None


def test_no_families_when_metrics_are_off() -> None:
    """server_metrics() is None when the metrics setting is off."""
    with obskit.testing.isolated(metrics=False):
        assert server_metrics() is None


def test_request_recorded_with_semconv_labels() -> None:
    """A finished request lands in the duration histogram under the semconv label names."""
    with obskit.testing.isolated() as cap:
        metrics = server_metrics()
        assert metrics is not None
        metrics.request_started("GET")
        active = {"http_request_method": "GET", "url_scheme": "http"}
        assert 1.0 == cap.sample("http_server_active_requests", active)
        metrics.request_finished("GET", "/items/{id}", 200, "", 0.03)
        assert 0.0 == cap.sample("http_server_active_requests", active)
        assert 1.0 == cap.sample(DURATION + "_count", _labels())
        assert 0.0 == cap.sample(DURATION + "_bucket", {**_labels(), "le": "0.025"})
        assert 1.0 == cap.sample(DURATION + "_bucket", {**_labels(), "le": "0.05"})
        assert 0.03 == cap.sample(DURATION + "_sum", _labels())


def test_errors_carry_status_and_error_type() -> None:
    """A 500 is recorded with its status code and error type, apart from successes."""
    with obskit.testing.isolated() as cap:
        metrics = server_metrics()
        assert metrics is not None
        for _ in range(3):
            metrics.request_finished("POST", "/pay", 500, "500", 0.2)
        metrics.request_finished("POST", "/pay", 200, "", 0.1)
        errors = _labels(
            http_request_method="POST",
            http_route="/pay",
            http_response_status_code="500",
            error_type="500",
        )
        assert 3.0 == cap.sample(DURATION + "_count", errors)


def test_same_labels_reuse_one_child() -> None:
    """Repeated requests with one label tuple reuse the cached child instead of resolving labels."""
    with obskit.testing.isolated():
        metrics = server_metrics()
        assert metrics is not None
        metrics.request_finished("GET", "/a", 200, "", 0.01)
        first = metrics._series[("GET", "http", "/a", 200, "", "")]
        metrics.request_finished("GET", "/a", 200, "", 0.01)
        assert first is metrics._series[("GET", "http", "/a", 200, "", "")]
        assert 1 == len(metrics._series)


def test_tenant_goes_through_the_guard() -> None:
    """A steady tenant earns its own label value; a one-off tenant is folded into __other__."""
    with obskit.testing.isolated(label_top_k=2) as cap:
        metrics = server_metrics()
        assert metrics is not None
        for _ in range(20):
            metrics.request_finished("GET", "/a", 200, "", 0.01, tenant="acme")
        metrics.request_finished("GET", "/a", 200, "", 0.01, tenant="one-off")
        acme = _labels(http_route="/a", tenant_id="acme")
        other = _labels(http_route="/a", tenant_id="__other__")
        assert 20.0 - 1.0 == cap.sample(DURATION + "_count", acme)  # admitted on its 2nd request
        assert 2.0 == cap.sample(DURATION + "_count", other)
        assert 2.0 == cap.sample("obskit_label_overflow_total", {"label": "tenant_id"})


def test_exemplar_offered_through_the_gate() -> None:
    """The trace id reaches the OpenMetrics output only when the gate applies the offer."""
    offers: list[int] = []

    class Holding:
        def offer(self, trace_id: int, apply: _exemplars.Apply) -> None:
            offers.append(trace_id)
            if trace_id == 0xABC:
                apply()

    _exemplars.set_gate(Holding())
    try:
        with obskit.testing.isolated(tracing=False) as cap:
            metrics = server_metrics()
            assert metrics is not None
            metrics.request_finished("GET", "/kept", 200, "", 0.01, trace_id=0xABC)
            metrics.request_finished("GET", "/dropped", 200, "", 0.01, trace_id=0xDEF)
            text = generate_latest(cap.registry).decode()
    finally:
        _exemplars.set_gate(None)
    assert [0xABC, 0xDEF] == offers
    assert '# {trace_id="00000000000000000000000000000abc"} 0.01' in text
    assert "00000000000000000000000000000def" not in text


def test_time_to_first_byte_has_its_own_histogram() -> None:
    """ttfb_s is observed in its own histogram labelled by method and route."""
    with obskit.testing.isolated() as cap:
        metrics = server_metrics()
        assert metrics is not None
        metrics.request_finished("GET", "/a", 200, "", 0.5, ttfb_s=0.1)
        labels = {"http_request_method": "GET", "http_route": "/a"}
        assert 1.0 == cap.sample("obskit_http_server_time_to_first_byte_seconds_count", labels)


def test_duration_and_time_to_first_byte_recorded_together() -> None:
    """One call records both histograms (ttfb only when given), under the lock they share."""
    with obskit.testing.isolated() as cap:
        metrics = server_metrics()
        assert metrics is not None
        metrics.request_finished("GET", "/a", 200, "", 0.5, ttfb_s=0.1)
        metrics.request_finished("GET", "/a", 200, "", 0.02)
        route = {"http_request_method": "GET", "http_route": "/a"}
        labels = _labels(http_route="/a")
        assert (2.0, 0.52) == (
            cap.sample(DURATION + "_count", labels),
            cap.sample(DURATION + "_sum", labels),
        )
        ttfb = "obskit_http_server_time_to_first_byte_seconds"
        assert (1.0, 0.1) == (cap.sample(ttfb + "_count", route), cap.sample(ttfb + "_sum", route))
        assert 1.0 == cap.sample(ttfb + "_bucket", {**route, "le": "0.1"})
        duration = metrics._duration_family.labels("GET", "http", "/a", "200", "", "")
        assert duration._lock is metrics._ttfb_family.labels("GET", "/a")._lock


@pytest.mark.parametrize("shared", [True, False])
def test_observe_pair_counts_as_two_observations(shared: bool) -> None:
    """observe_pair, with a shared lock or child by child, counts what two observe() calls do."""
    from obskit.metrics._store import Store, observe_pair

    store = Store()
    first = store.histogram("first_seconds", "First.", (), (0.1, 1.0), shared_lock=shared)
    second = store.histogram("second_seconds", "Second.", (), (0.1, 1.0), shared_lock=shared)
    record = observe_pair(first.labels(), second.labels())
    record(0.05, 2.0)
    record(0.5, None)
    assert ([1, 1, 0], 0.55) == first.labels().snapshot()
    assert ([0, 0, 1], 2.0) == second.labels().snapshot()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_shared_lock_held_across_a_fork_is_free_in_the_child() -> None:
    """The store's shared lock, held by another thread at a fork, is free in the child."""
    from obskit.metrics._store import Store

    store = Store()
    family = store.histogram("first_seconds", "First.", (), (0.1, 1.0), shared_lock=True)
    other = store.histogram("second_seconds", "Second.", (), (0.1, 1.0), shared_lock=True)
    shared = family.labels()._lock
    assert shared is other.labels()._lock
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with shared:  # as another thread of the parent, observing at the moment of the fork
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:

        def in_child() -> float | None:
            signal.alarm(10)  # a hang ends the child, and the test fails on its missing value
            family.labels().observe(0.5)
            return family.labels().snapshot()[1]

        assert 0.5 == _in_forked_child(in_child)
    finally:
        release.set()
        thread.join(5)


def _in_forked_child(work: Callable[[], float | None]) -> float | None:
    """Run ``work`` in a forked child and return what it returned (a sample value)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the value and leave at once, whatever happened
        os.close(read_end)
        value = None
        try:
            value = work()
        finally:
            os.write(write_end, repr(value).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return None if text == "None" else float(text)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_records_into_its_own_families() -> None:
    """After a fork the child's requests are counted in the child's (cleared) families."""
    with obskit.testing.isolated() as cap:
        metrics = server_metrics()
        assert metrics is not None
        metrics.request_finished("GET", "/items/{id}", 200, "", 0.03)  # caches the series

        def in_child() -> float | None:
            child_metrics = server_metrics()
            assert child_metrics is not None
            for _ in range(2):
                child_metrics.request_finished("GET", "/items/{id}", 200, "", 0.03)
            return cap.sample(DURATION + "_count", _labels())

        assert 2.0 == _in_forked_child(in_child)
        assert 1.0 == cap.sample(DURATION + "_count", _labels())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_records_streams_into_its_own_families() -> None:
    """After a fork the child's streams are counted in the child's (cleared) families."""
    labels = {"kind": "sse", "http_route": "/feed", "outcome": "closed"}
    with obskit.testing.isolated() as cap:
        streams = stream_metrics()
        assert streams is not None
        streams.closed("sse", "/feed", "closed", 1.0)  # caches the child

        def in_child() -> float | None:
            child_streams = stream_metrics()
            assert child_streams is not None
            child_streams.closed("sse", "/feed", "closed", 1.0)
            return cap.sample("http_server_stream_duration_seconds_count", labels)

        assert 1.0 == _in_forked_child(in_child)


def test_url_scheme_label_from_the_request() -> None:
    """The scheme the server reports becomes url_scheme; unknown schemes fold into _OTHER."""
    with obskit.testing.isolated() as cap:
        metrics = server_metrics()
        assert metrics is not None
        for scheme in ("https", "HTTPS", "gopher"):
            metrics.request_started("GET", scheme)
            metrics.request_finished("GET", "/a", 200, "", 0.01, scheme)
        labels = _labels(http_route="/a")
        assert 2.0 == cap.sample(DURATION + "_count", {**labels, "url_scheme": "https"})
        assert 1.0 == cap.sample(DURATION + "_count", {**labels, "url_scheme": "_OTHER"})
        active = {"http_request_method": "GET", "url_scheme": "https"}
        assert 0.0 == cap.sample("http_server_active_requests", active)


def test_middlewares_label_the_scheme_of_the_request() -> None:
    """Through the ASGI and the WSGI middleware, an https request is labelled url_scheme=https."""
    import asyncio

    import httpx
    from flask import Flask
    from werkzeug.test import EnvironBuilder

    async def hello(scope: dict[str, object], receive: object, send: Callable[..., object]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[misc]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[misc]

    async def over_https() -> None:
        transport = httpx.ASGITransport(app=obskit.ASGIMiddleware(hello))
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            assert 200 == (await client.get("/a")).status_code

    flask = Flask("scheme")
    flask.add_url_rule("/w", "w", lambda: "ok")
    flask.wsgi_app = obskit.WSGIMiddleware(flask.wsgi_app)  # type: ignore[method-assign]
    with obskit.testing.isolated(tracing=False) as cap:
        asyncio.run(over_https())
        environ = EnvironBuilder(path="/w", base_url="https://localhost").get_environ()
        body = flask.wsgi_app(environ, lambda status, headers, exc_info=None: None)
        assert b"ok" == b"".join(body)
        body.close()  # type: ignore[attr-defined]
        exposition = generate_latest(cap.registry).decode()
    requests = [line for line in exposition.splitlines() if line.startswith(DURATION + "_count{")]
    assert 2 == len(requests), requests
    assert all('url_scheme="https"' in line for line in requests), requests
