"""reset() really resets: init -> traffic -> reset, many times over, leaves nothing behind."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import io
import queue
import sys
import weakref
from typing import Any

import httpx
import pytest

import obskit
import obskit.testing
from obskit import _live

ROUNDS = 6


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/fail":
        raise RuntimeError("boom")
    headers = [(b"content-type", b"text/event-stream")] if scope["path"] == "/events" else []
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@obskit.red
def _work(n: int) -> int:
    obskit.business_event("order.placed", n % 2 == 0, tenant_id="acme")
    return n


@obskit.red
async def _async_work() -> None:
    obskit.get_logger("reset").debug("held while the trace is undecided")


def _traffic() -> None:
    """Requests through both middlewares, decorated calls, a business event, a stream."""
    asgi = obskit.ASGIMiddleware(_asgi_app)
    wsgi = obskit.WSGIMiddleware(_wsgi_app)

    async def serve() -> None:
        obskit.monitor_event_loop()
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in ("/a", "/fail", "/events"):
                await client.get(path, headers={"x-tenant-id": "acme"})
        await _async_work()

    asyncio.run(serve())
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/w",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }
    body = wsgi(environ, lambda status, headers, exc_info=None: None)
    assert [b"ok"] == list(body)
    for n in range(3):
        _work(n)


def _parts() -> dict[str, weakref.ref[Any]]:
    """Weak references to what the live runtime built: these must all die with it."""
    runtime = _live.current()
    assert runtime is not None
    tracing = runtime.components["tracing"]
    metrics = runtime.components["metrics"]
    return {
        "runtime": weakref.ref(runtime),
        "registry": weakref.ref(runtime.registry),
        "sampler": weakref.ref(tracing.processor),  # type: ignore[attr-defined]
        "tracer provider": weakref.ref(tracing.provider),  # type: ignore[attr-defined]
        "metric store": weakref.ref(metrics.store),  # type: ignore[attr-defined]
    }


def _survivors(parts: dict[str, weakref.ref[Any]]) -> list[str]:
    gc.collect()
    return [name for name, ref in parts.items() if ref() is not None]


def test_nothing_of_a_runtime_survives_its_reset() -> None:
    """After each isolated block no part of its runtime is alive: not its sampler, not its store."""
    for _ in range(ROUNDS):
        with obskit.testing.isolated(service_name="reset", baseline_ratio=1.0) as env:
            _traffic()
            parts = _parts()
            calls = {"function": "_work", "module": __name__, "result": "ok", "error_type": ""}
            assert 3.0 == env.sample("obskit_function_calls_total", calls)
        del env  # (it holds the block's registry)
        assert [] == _survivors(parts)


def test_a_tracked_object_is_forgotten_by_reset() -> None:
    """A queue, pool or thread pool tracked in one block is not reported in the next."""
    for _ in range(ROUNDS):
        jobs: queue.Queue[int] = queue.Queue(maxsize=5)
        executor = concurrent.futures.ThreadPoolExecutor(1)

        class Pool:
            used, idle, size = 1, 2, 3

        pool = Pool()
        with obskit.testing.isolated(service_name="reset", tracing=False) as env:
            obskit.track_queue(jobs, "jobs")
            obskit.track_executor(executor, "workers")
            obskit.track_pool(pool, "db", used=lambda p: p.used, max=lambda p: p.size)
            assert 5.0 == env.sample("obskit_queue_capacity", {"queue": "jobs"})
            assert 1.0 == env.sample("obskit_executor_max_workers", {"executor": "workers"})
            assert "submit" in vars(executor)  # wrapped while tracked
        assert "submit" not in vars(executor)  # its own submit again
        with obskit.testing.isolated(service_name="reset", tracing=False) as env:
            assert env.sample("obskit_queue_capacity", {"queue": "jobs"}) is None
            assert env.sample("obskit_executor_max_workers", {"executor": "workers"}) is None
            assert env.sample("obskit_pool_max_connections", {"pool": "db"}) is None
        executor.shutdown()


def test_a_loop_named_before_reset_is_not_monitored_after() -> None:
    """monitor_event_loop() is the application's request: reset() forgets it, shutdown() not."""
    from obskit.metrics.use import event_loop

    loop = asyncio.new_event_loop()
    try:
        assert not obskit.monitor_event_loop(loop)  # before init(): remembered
        assert loop in event_loop._requested
        obskit.init(service_name="reset", tracing=False, registry=_registry())
        obskit.shutdown()
        assert loop in event_loop._requested
        obskit.testing.reset()
        assert loop not in event_loop._requested
    finally:
        loop.close()


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.mark.parametrize("ending", ["shutdown", "reset"])
def test_the_request_path_forgets_a_runtime_that_ended(ending: str) -> None:
    """After shutdown() (as after reset()), a request and a decorated call record nothing."""
    with obskit.testing.isolated(service_name="reset", baseline_ratio=1.0) as env:
        _traffic()
        parts = _parts()
        obskit.shutdown() if ending == "shutdown" else obskit.testing.reset()
        before = env.registry.get_sample_value(
            "obskit_function_calls_total",
            {"function": "_work", "module": __name__, "result": "ok", "error_type": ""},
        )
        _work(0)
        after = env.registry.get_sample_value(
            "obskit_function_calls_total",
            {"function": "_work", "module": __name__, "result": "ok", "error_type": ""},
        )
        assert before == after
        assert ["registry"] == _survivors(parts)  # (the block itself holds its registry)
