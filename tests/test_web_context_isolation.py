"""What a handler binds lives and dies with its request (issue 13 item 8), on real servers.

A handler binds ``user`` with ``structlog.contextvars.bind_contextvars`` and ``order`` with
``obskit.bind``, without a token, as handlers do. Its own lines carry both; no line of any later
request served by the same worker, thread or task does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import obskit
import obskit.testing
from server_support import Service, serve, settle

BOUND = ("user", "order")


def _leaks(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines of requests other than /bind that carry a field bound by /bind."""
    return [
        line
        for line in lines
        if line.get("event") != "bound"
        and line.get("path") != "/bind"
        and any(key in line for key in BOUND)
    ]


def _drive(service: Service, binds: int = 30, later: int = 40) -> None:
    """``binds`` requests to /bind, then ``later`` to /items/N, each on its own connection (so
    they spread over the workers and threads)."""
    for _ in range(binds):
        assert 200 == httpx.get(service.url + "/bind", timeout=10).status_code
    for n in range(later):
        assert 200 == httpx.get(f"{service.url}/items/{n}", timeout=10).status_code
    settle(service, binds + later)


def _check(service: Service, binds: int = 30, later: int = 40) -> None:
    lines = service.lines()
    access = service.access()
    assert binds + later == len(access)
    bind_lines = [line for line in access if line["path"] == "/bind"]
    # Alive during its own request: the access line is written before the request ends.
    assert [("alice", "o-1")] * binds == [(line["user"], line["order"]) for line in bind_lines]
    assert later == len([line for line in lines if line.get("event") == "handled"])
    assert [] == _leaks(lines)


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_three_workers_forget_what_a_request_bound(tmp_path: Path, worker: str) -> None:
    """gunicorn -w 3 (sync, and gthread with 4 threads): no later request sees the binds."""
    threads = ["--threads", "4"] if worker == "gthread" else []
    argv = ("-k", worker, "--workers", "3", *threads)
    with serve("gunicorn", "flask_app:app", tmp_path, *argv) as service:
        _drive(service)
        _check(service)


@pytest.mark.slow
def test_uvicorn_two_workers_forget_what_a_request_bound(tmp_path: Path) -> None:
    """uvicorn --workers 2 (FastAPI): no later request sees the binds."""
    with serve("uvicorn", "fastapi_app:app", tmp_path, "--workers", "2") as service:
        _drive(service)
        _check(service)


def _starlette() -> Any:
    async def bind(request: Request) -> PlainTextResponse:
        structlog.contextvars.bind_contextvars(user="alice")
        obskit.bind(order="o-1")
        obskit.get_logger("t").info("bound")
        return PlainTextResponse("bound")

    async def item(request: Request) -> PlainTextResponse:
        obskit.get_logger("t").info("handled")
        return PlainTextResponse("item")

    return Starlette(routes=[Route("/bind", bind), Route("/items/{n}", item)])


def test_asgi_middleware_forgets_binds_when_requests_share_a_task() -> None:
    """httpx's ASGITransport runs every request in the caller's task: the middleware itself
    still ends the binds with their request (structlog's too, which have no token to reset)."""

    async def drive() -> None:
        transport = httpx.ASGITransport(app=obskit.ASGIMiddleware(_starlette()))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ["/bind", "/items/1", "/bind", "/items/2"]:
                assert 200 == (await client.get(path)).status_code
        # Nor does the caller's task keep them.
        assert {} == structlog.contextvars.get_contextvars()
        assert {} == obskit.get_context()

    with obskit.testing.isolated() as capture:
        asyncio.run(drive())
    access = [line for line in capture.logs if line.get("logger") == "obskit.access"]
    assert ["alice", "alice"] == [line["user"] for line in access if line["path"] == "/bind"]
    assert 2 == len([line for line in capture.logs if line.get("event") == "handled"])
    assert [] == _leaks(capture.logs)


def test_wsgi_middleware_forgets_binds_on_the_same_thread() -> None:
    """Two requests served one after the other on this thread (werkzeug's client): the second
    sees nothing the first bound, and the thread keeps nothing."""
    from flask import Flask
    from werkzeug.test import Client

    app = Flask("t")

    @app.get("/bind")
    def bind() -> str:
        structlog.contextvars.bind_contextvars(user="alice")
        obskit.bind(order="o-1")
        return "bound"

    @app.get("/items/<int:n>")
    def item(n: int) -> dict[str, Any]:
        obskit.get_logger("t").info("handled")
        return {"structlog": structlog.contextvars.get_contextvars()}

    with obskit.testing.isolated() as capture:
        client = Client(obskit.WSGIMiddleware(app.wsgi_app))
        assert 200 == client.get("/bind", buffered=True).status_code
        response = client.get("/items/1", buffered=True)
        assert {"structlog": {}} == response.json
        assert {} == structlog.contextvars.get_contextvars()
        assert {} == obskit.get_context()
    assert [] == _leaks(capture.logs)


def test_red_entry_points_forget_binds_between_calls() -> None:
    """A consumer loop calling an ``@obskit.red`` handler (sync, then async) outside any
    request: each call is a unit of work with its own correlation id, and what one call binds
    is gone before the next."""
    seen: list[dict[str, Any]] = []

    @obskit.red
    def handle(n: int) -> None:
        seen.append({**structlog.contextvars.get_contextvars(), **obskit.get_context()})
        structlog.contextvars.bind_contextvars(user=f"u{n}")
        obskit.bind(order=f"o{n}")
        obskit.get_logger("worker").info("message", n=n)

    @obskit.red
    async def handle_async(n: int) -> None:
        handle(n)  # nested: part of this unit of work, no scope of its own

    with obskit.testing.isolated() as capture:
        for n in range(3):
            handle(n)

        async def consume() -> None:
            for n in range(3, 6):
                await handle_async(n)

        asyncio.run(consume())
        assert {} == structlog.contextvars.get_contextvars()
        assert {} == obskit.get_context()
    assert [["correlation_id"]] * 6 == [sorted(fields) for fields in seen]
    assert 6 == len({fields["correlation_id"] for fields in seen})
    messages = [line for line in capture.logs if line.get("event") == "message"]
    assert [(f"u{n}", f"o{n}") for n in range(6)] == [(m["user"], m["order"]) for m in messages]


def test_red_inside_a_request_binds_for_the_request() -> None:
    """Inside a request, an ``@obskit.red`` function is part of it: what it binds stays bound
    for the rest of the request, as ``obskit.bind`` documents."""
    from flask import Flask
    from werkzeug.test import Client

    @obskit.red
    def load_user() -> None:
        obskit.bind(user_id="u-9")

    app = Flask("t")

    @app.get("/")
    def index() -> dict[str, Any]:
        load_user()
        return obskit.get_context()

    with obskit.testing.isolated():
        client = Client(obskit.WSGIMiddleware(app.wsgi_app))
        body = client.get("/", buffered=True, headers={"X-Request-ID": "r-1"}).json
    assert {"correlation_id": "r-1", "user_id": "u-9"} == body
