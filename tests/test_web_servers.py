"""Real servers on loopback: uvicorn (FastAPI, Starlette, Django) and gunicorn (Flask, Django)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from server_support import get_all, routes_of, serve, settle

pytestmark = pytest.mark.slow


def test_uvicorn_fastapi_route_templates(tmp_path: Path) -> None:
    """FastAPI under uvicorn: templates incl. router prefix and mount; one access line each."""
    paths = ["/items/1", "/items/2", "/orders/o1/lines", "/sub/users/u1", "/missing/1", "/x/y"]
    with serve("uvicorn", "fastapi_app:app", tmp_path) as service:
        assert [200, 200, 200, 200, 404, 404] == get_all(service, paths)
        settle(service, len(paths))
        routes = routes_of(service.metrics())
        lines = service.lines()
    expected = {"/items/{item_id}", "/orders/{order_id}/lines", "/sub/users/{uid}", "__unmatched__"}
    assert expected == routes
    assert len(paths) == len([line for line in lines if line.get("logger") == "obskit.access"])
    assert [] == [line for line in lines if line.get("logger") == "uvicorn.access"]


def test_uvicorn_starlette_route_templates(tmp_path: Path) -> None:
    """Plain Starlette under uvicorn: a mounted app's route joins the mount's template."""
    with serve("uvicorn", "starlette_app:app", tmp_path) as service:
        assert [200, 200, 404] == get_all(service, ["/items/a", "/docs/v1/pages/3", "/nope"])
        settle(service, 3)
        routes = routes_of(service.metrics())
    assert {"/items/{item_id}", "/docs/{version}/pages/{page:int}", "__unmatched__"} == routes


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_flask_route_templates(tmp_path: Path, worker: str) -> None:
    """Flask under gunicorn sync and gthread: rules as routes, gunicorn's access log replaced."""
    threads = ["--threads", "4"] if worker == "gthread" else []
    paths = ["/items/1", "/items/2", "/7/update", "/nope", "/also/nope"]
    with serve("gunicorn", "flask_app:app", tmp_path, "-k", worker, *threads) as service:
        assert [200, 200, 200, 404, 404] == get_all(service, paths)
        settle(service, len(paths))
        routes = routes_of(service.metrics())
        access = service.access()
        lines = service.lines()
        raw = service.log.read_text()
    assert {"/items/<int:item_id>", "/<int:id>/update", "__unmatched__"} == routes
    assert paths == [line["path"] for line in access]
    assert [] == [line for line in lines if line.get("logger") == "gunicorn.access"]
    assert "GET /items/1 HTTP/1.1" not in raw  # nor gunicorn's own format, bypassing obskit


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_django_route_templates(tmp_path: Path, kind: str) -> None:
    """Django under uvicorn (ASGI) and gunicorn gthread (WSGI): resolver_match routes, and the
    exception behind Django's own 500 page named in the access line."""
    if kind == "asgi":
        ctx = serve("uvicorn", "django_asgi:application", tmp_path)
    else:
        ctx = serve("gunicorn", "django_wsgi:application", tmp_path, "-k", "gthread")
    with ctx as service:
        paths = ["/5/update", "/articles/2024/", "/nope", "/boom/"]
        assert [200, 200, 404, 500] == get_all(service, paths)
        settle(service, 4)
        routes = routes_of(service.metrics())
        access = service.access()
    assert {"/<int:id>/update", "/articles/<int:year>/", "__unmatched__", "/boom/"} == routes
    # Django answers the view's exception with its own 500 page; the line still names it.
    [failed] = [line for line in access if line["path"] == "/boom/"]
    assert ("LookupError", "error") == (failed["error_type"], failed["level"])


def test_two_thousand_concurrent_requests_without_cross_talk(tmp_path: Path) -> None:
    """2,000 requests at concurrency 200: echoes, log lines and spans all match their request."""
    total, concurrency = 2000, 200

    async def drive(url: str) -> list[tuple[str, str, str]]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        semaphore = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

            async def one(n: int) -> tuple[str, str, str]:
                rid = f"req-{n:05d}"
                async with semaphore:
                    response = await client.get(f"/items/{n}", headers={"x-request-id": rid})
                body = response.json()
                return rid, response.headers["x-request-id"], body["context"]["correlation_id"]

            return await asyncio.gather(*(one(n) for n in range(total)))

    # A long keep-alive: under load a pooled connection can sit idle past uvicorn's default 5 s,
    # and a request sent as the server closes it fails in the transport, not in obskit.
    with serve(
        "uvicorn", "fastapi_app:app", tmp_path, "--no-access-log", "--timeout-keep-alive", "120"
    ) as service:
        results = asyncio.run(drive(service.url))
        settle(service, total)
        lines = service.lines()
        spans = service.span_records()
    assert [(rid, rid, rid) for rid, _, _ in results] == results
    access = [line for line in lines if line.get("logger") == "obskit.access"]
    handled = [line for line in lines if line.get("event") == "handled"]
    assert total == len(access) == len(handled)
    assert [] == [a for a in access if a["correlation_id"] != f"req-{int(a['path'][7:]):05d}"]
    assert [] == [h for h in handled if h["correlation_id"] != f"req-{int(h['item_id']):05d}"]
    servers = [s for s in spans if s["kind"] == "SERVER"]
    assert total == len(servers)
    mismatched = [
        s
        for s in servers
        if s["attributes"]["correlation_id"] != f"req-{int(s['attributes']['url.path'][7:]):05d}"
    ]
    assert [] == mismatched
    by_request = {a["correlation_id"]: a["trace_id"] for a in access}
    span_traces = {s["attributes"]["correlation_id"]: s["trace_id"] for s in servers}
    assert by_request == span_traces


def test_caller_and_callee_share_the_trace(tmp_path: Path) -> None:
    """A service calling another through httpx: one trace id, the callee logs the caller's id."""
    with (
        serve("uvicorn", "fastapi_app:app", tmp_path) as callee,
        serve("uvicorn", "fastapi_app:app", tmp_path, CALLEE_URL=callee.url) as caller,
    ):
        response = httpx.get(caller.url + "/call", headers={"x-request-id": "chain-1"}, timeout=10)
        assert 200 == response.status_code
        settle(callee, 1)
        settle(caller, 1)
        callee_access = callee.access()
        caller_spans = caller.span_records()
        callee_spans = callee.span_records()
    assert "chain-1" == response.json()["callee"]["context"]["correlation_id"]
    assert ["chain-1"] == [line["correlation_id"] for line in callee_access]
    [client_span] = [s for s in caller_spans if s["kind"] == "CLIENT"]
    [callee_server] = [s for s in callee_spans if s["kind"] == "SERVER"]
    [caller_server] = [s for s in caller_spans if s["kind"] == "SERVER"]
    assert caller_server["trace_id"] == client_span["trace_id"] == callee_server["trace_id"]
    assert client_span["span_id"] == callee_server["parent_id"]


def test_uvicorn_access_log_bridged_when_obskit_writes_none(tmp_path: Path) -> None:
    """With access_log off, uvicorn's own access lines go through obskit's chain, once each."""
    with serve("uvicorn", "starlette_app:app", tmp_path, OBSKIT_ACCESS_LOG="false") as service:
        assert [200, 200] == get_all(service, ["/items/a", "/items/b"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            uvicorn_lines = [x for x in service.lines() if x.get("logger") == "uvicorn.access"]
            if len(uvicorn_lines) >= 2:
                break
            time.sleep(0.05)
        lines = service.lines()
    assert 2 == len([line for line in lines if line.get("logger") == "uvicorn.access"])
    assert [] == [line for line in lines if line.get("logger") == "obskit.access"]
    assert all(line["service"] for line in lines if line.get("logger") == "uvicorn.access")


def test_gunicorn_gthread_concurrent_requests_without_cross_talk(tmp_path: Path) -> None:
    """400 requests at concurrency 40 on 8 gunicorn threads: every id stays with its request."""
    total, concurrency = 400, 40

    async def drive(url: str) -> list[tuple[str, str, str]]:
        semaphore = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

            async def one(n: int) -> tuple[str, str, str]:
                rid = f"wsgi-{n:04d}"
                async with semaphore:
                    response = await client.get(f"/items/{n}", headers={"x-request-id": rid})
                body = response.json()
                return rid, response.headers["x-request-id"], body["context"]["correlation_id"]

            return await asyncio.gather(*(one(n) for n in range(total)))

    argv = ("-k", "gthread", "--threads", "8")
    with serve("gunicorn", "flask_app:app", tmp_path, *argv) as service:
        results = asyncio.run(drive(service.url))
        settle(service, total)
        lines = service.lines()
        spans = [s for s in service.span_records() if s["kind"] == "SERVER"]
    assert [(rid, rid, rid) for rid, _, _ in results] == results
    access = [line for line in lines if line.get("logger") == "obskit.access"]
    handled = [line for line in lines if line.get("event") == "handled"]
    assert total == len(access) == len(handled) == len(spans)
    assert [] == [a for a in access if a["correlation_id"] != f"wsgi-{int(a['path'][7:]):04d}"]
    assert [] == [h for h in handled if h["correlation_id"] != f"wsgi-{h['item_id']:04d}"]
    assert [] == [
        s
        for s in spans
        if s["attributes"]["correlation_id"] != f"wsgi-{int(s['attributes']['url.path'][7:]):04d}"
    ]
