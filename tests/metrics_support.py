"""Helpers for the metrics tests: drive every family obskit has, parse expositions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

import obskit
from obskit import _live
from obskit.metrics.exposition import render
from obskit.web.streams import stream_metrics
from web_support import http_scope

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Boom(Exception):
    """The test application's failure."""


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/boom":
        raise Boom("boom")
    if scope["path"] == "/ok":  # an allowed feature flag evaluated inside the request
        from obskit.metrics import flags

        flags.evaluated("checkout-v2", "on")
    headers = [(b"content-type", b"text/event-stream")] if scope["path"] == "/events" else []
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def asgi_request(app: Any, path: str, tenant: str | None = None) -> None:
    """One GET of ``path`` through ``app`` (with the tenant header when given), in process."""
    scope = http_scope(path, {"x-tenant-id": tenant} if tenant else None)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return

    try:
        await app(scope, receive, send)
    except Boom:
        pass


@obskit.red
def _work(fail: bool) -> int:
    if fail:
        raise Boom("work failed")
    return 1


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def every_family_driven() -> Iterator[list[object]]:
    """Inside a live runtime: requests (ok, failed, a stream), calls, tracked objects.

    Yields the tracked objects (they are held weakly by obskit: keep them alive while scraping).
    """
    app = obskit.ASGIMiddleware(_app)

    async def traffic() -> None:
        for path in ("/ok", "/boom", "/events"):
            await asgi_request(app, path, tenant="acme")

    asyncio.run(traffic())
    _work(False)
    obskit.business_event("checkout", success=True, tenant_id="acme")
    # A deploy marker whose one destination refuses: counted as failed.
    from obskit.incident.destinations import Datadog

    obskit.mark_deploy("1", "test", destinations=[Datadog("k", url=_refused_url())], timeout=2)
    try:
        _work(True)
    except Boom:
        pass
    streams = stream_metrics()
    if streams is not None:  # a WebSocket session, straight to the families
        streams.opened("websocket", "/ws")
        streams.closed("websocket", "/ws", "closed", 1.0)
    jobs: queue.Queue[int] = queue.Queue(maxsize=4)
    other: queue.Queue[int] = queue.Queue()
    obskit.track_queue(jobs, "jobs")
    obskit.track_queue(other, "jobs")  # a name tracked again for another object: replaced
    obskit.track_queue(jobs, "bounded")

    class Pool:
        used, idle, size = 1, 2, 3

    pool = Pool()
    handle = obskit.track_pool(
        pool, "db", used=lambda p: p.used, idle=lambda p: p.idle, max=lambda p: p.size
    )
    with handle.waiting():
        pass
    executor = concurrent.futures.ThreadPoolExecutor(1)
    obskit.track_executor(executor, "images")
    executor.submit(int).result(timeout=10)
    try:
        yield [jobs, other, pool, executor]
    finally:
        executor.shutdown(wait=True)


def scrape(accept: str = "") -> str:
    """The live runtime's exposition in the format ``accept`` asks for (text by default)."""
    component = _live.metrics()
    assert component is not None
    body, _ = render(component.scrape_source(), accept, None)
    return body.decode()


@dataclass(frozen=True)
class Parsed:
    """One family of a parsed exposition."""

    name: str
    type: str
    help: str
    labels: frozenset[str]
    series: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def parse(text: str, openmetrics: bool) -> list[Parsed]:
    """Families of an exposition, each with its series as (sample name, sorted labels)."""
    families = parse_openmetrics(text) if openmetrics else parse_text(text)
    out = []
    for family in families:
        labels: set[str] = set()
        series = []
        for sample in family.samples:
            labels |= set(sample.labels)
            series.append((sample.name, tuple(sorted(sample.labels.items()))))
        out.append(
            Parsed(family.name, family.type, family.documentation, frozenset(labels), tuple(series))
        )
    return out
