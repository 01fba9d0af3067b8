"""Probes and scrapes kept out of RED, traces and the access log (issue 14 item 9).

The services run obskit's own span pipeline (tail sampling, every ordinary trace kept: baseline
1.0, kept spans written to the local sink), so a request that leaves a trace shows up there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

import obskit
import obskit.testing
from obskit import ConfigError
from server_support import routes_of, serve, settle


def _kept(sink: Path, expected: int) -> list[dict[str, Any]]:
    """The SERVER spans in the sink, once ``expected`` are there (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        records = []
        if sink.exists():
            records = [json.loads(line) for line in sink.read_text().splitlines() if line]
        servers = [r for r in records if r.get("kind") in ("SERVER", "SpanKind.SERVER", 2)]
        if len(servers) >= expected or time.monotonic() > deadline:
            return servers
        time.sleep(0.1)


def _pipeline(sink: Path, **settings: str) -> dict[str, str]:
    return {
        "OBSKIT_TEST_SPANS": "",
        "OBSKIT_TRACE_SINK": str(sink),
        "OBSKIT_BASELINE_RATIO": "1.0",
        **settings,
    }


def _names(spans: list[dict[str, Any]]) -> list[str]:
    return sorted(span["name"] for span in spans)


@pytest.mark.slow
def test_uvicorn_probes_and_the_mounted_metrics_app_are_left_out(tmp_path: Path) -> None:
    """FastAPI under uvicorn: the mounted metrics app answers /metrics itself (no 307) and is not
    a route; /healthz (a path) and /probe/{name} (a template) leave no RED series, no access line
    and no trace; the probe still gets its correlation id, echoed and in its log line."""
    sink = tmp_path / "kept.jsonl"
    env = _pipeline(sink, OBSKIT_EXCLUDE="/metrics,/healthz,/probe/{name}")
    with serve("uvicorn", "probes_app:app", tmp_path, **env) as service:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            scrape = client.get("/metrics")  # httpx does not follow redirects: a 307 shows
            slashed = client.get("/metrics/")
            probe = client.get("/healthz", headers={"x-request-id": "probe-1"})
            assert 200 == client.get("/probe/db").status_code
            assert 200 == client.get("/items/1").status_code
        servers = _kept(sink, 1)
        settle(service, 1)
        time.sleep(0.5)  # room for a line or span that should not come
        access = service.access()
        lines = service.lines()
        exposition = service.metrics()
        servers = _kept(sink, 1)
    assert (200, 200) == (scrape.status_code, slashed.status_code)
    assert "http_server_request_duration_seconds" in scrape.text
    assert "probe-1" == probe.headers["x-request-id"]
    assert {"correlation_id": "probe-1"} == probe.json()["context"]
    assert ["/items/1"] == [line["path"] for line in access]
    assert {"/items/{item_id}"} == routes_of(exposition)
    assert ["GET /items/{item_id}"] == _names(servers)
    [probed] = [line for line in lines if line.get("event") == "probed"]
    assert "probe-1" == probed["correlation_id"]
    assert "trace_id" not in probed  # no span was started for it


@pytest.mark.slow
def test_uvicorn_default_excludes_only_the_metrics_endpoint(tmp_path: Path) -> None:
    """With no setting, the scrape is left out (and not redirected) but a probe is a request
    like any other."""
    sink = tmp_path / "kept.jsonl"
    with serve("uvicorn", "probes_app:app", tmp_path, **_pipeline(sink)) as service:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            assert 200 == client.get("/metrics").status_code
            assert 200 == client.get("/healthz").status_code
        settle(service, 1)
        servers = _kept(sink, 1)
        time.sleep(0.5)
        access = service.access()
        exposition = service.metrics()
    assert ["/healthz"] == [line["path"] for line in access]
    assert {"/healthz"} == routes_of(exposition)
    assert ["GET /healthz"] == _names(servers)


@pytest.mark.slow
def test_gunicorn_gthread_three_workers_leave_probes_out(tmp_path: Path) -> None:
    """Flask under gunicorn -w 3 -k gthread: a path (/healthz) and a Flask rule
    (/probe/<name>) excluded, each request on a new connection so all workers serve some."""
    sink = tmp_path / "kept.jsonl"
    env = _pipeline(sink, OBSKIT_EXCLUDE="/healthz,/probe/<name>")
    argv = ("-k", "gthread", "--workers", "3", "--threads", "2")
    with serve("gunicorn", "flask_app:app", tmp_path, *argv, **env) as service:
        for n in range(6):
            assert 200 == httpx.get(f"{service.url}/healthz", timeout=10).status_code
            assert 200 == httpx.get(f"{service.url}/probe/p{n}", timeout=10).status_code
            assert 200 == httpx.get(f"{service.url}/items/{n}", timeout=10).status_code
        settle(service, 6)
        servers = _kept(sink, 6)
        time.sleep(0.5)
        access = service.access()
        exposition = service.metrics()
        servers = _kept(sink, 6)
    assert sorted(f"/items/{n}" for n in range(6)) == sorted(line["path"] for line in access)
    assert {"/items/<int:item_id>"} == routes_of(exposition)
    assert ["GET /items/<int:item_id>"] * 6 == _names(servers)


@pytest.mark.parametrize("bad", ["healthz", "/a b", "/ok,metrics", ["/x", 3]])
def test_a_bad_exclusion_fails_init(bad: Any) -> None:
    """An entry that is not a path (no leading slash, a space, not text) fails init()."""
    with pytest.raises(ConfigError, match=r"'exclude'.*accepted: comma-separated paths"):
        obskit.init(exclude=bad, registry=CollectorRegistry())


def test_excluded_requests_leave_the_tail_sampler_nothing_to_decide() -> None:
    """In process (Flask, werkzeug's client): a path and a template excluded, with obskit's own
    lightweight spans: no decision is made for them, none is left pending, and the one request
    that is not excluded is decided as usual."""
    from flask import Flask
    from werkzeug.test import Client

    app = Flask("t")

    @app.get("/healthz/")
    def healthz() -> str:
        return "ok"

    @app.get("/probe/<name>")
    def probe(name: str) -> str:
        return name

    @app.get("/items/<int:n>")
    def item(n: int) -> str:
        return str(n)

    with obskit.testing.isolated(exclude="/healthz,/probe/<name>") as capture:
        client = Client(obskit.WSGIMiddleware(app.wsgi_app))
        for path in ["/healthz/", "/probe/db", "/items/1"]:
            assert 200 == client.get(path).status_code
        pending = capture.sample("obskit_tail_buffered_traces")
        decisions = sum(
            sample.value
            for metric in capture.registry.collect()
            if metric.name == "obskit_tail_decisions"
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        access = [x["path"] for x in capture.logs if x.get("logger") == "obskit.access"]
        in_flight = capture.sample(
            "http_server_active_requests", {"http_request_method": "GET", "url_scheme": "http"}
        )
    assert (0, 1, 0) == (pending, decisions, in_flight)
    assert ["/items/1"] == access


def test_metrics_app_serves_an_exact_route_too() -> None:
    """``Route("/metrics", obskit.metrics_asgi_app())`` (Starlette's add_route) serves the
    exposition: the app is an ASGI object, not a request handler function."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.routing import Route

    app = obskit.ASGIMiddleware(Starlette(routes=[Route("/metrics", obskit.metrics_asgi_app())]))

    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/metrics")

    with obskit.testing.isolated(tracing=False) as capture:
        response = asyncio.run(scrape())
        access = [x for x in capture.logs if x.get("logger") == "obskit.access"]
    assert 200 == response.status_code
    assert "obskit_build_info" in response.text
    assert [] == access
