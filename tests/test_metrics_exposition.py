"""Exposition: WSGI, ASGI and standalone server; format by Accept, gzip; promtool accepts it."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from tests.conftest import require_binary

import obskit
import obskit.testing
from obskit.metrics.http import server_metrics

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _record_some() -> None:
    metrics = server_metrics()
    assert metrics is not None
    metrics.request_started("GET")
    metrics.request_finished("GET", "/a", 200, "", 0.02, trace_id=0x1234)
    metrics.request_finished("GET", "/a", 503, "503", 1.5, tenant="acme")


def _wsgi_get(app: Any, **headers: str) -> tuple[str, dict[str, str], bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}
    environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_wsgi_text_by_default() -> None:
    """Without Accept the WSGI app answers the Prometheus text format."""
    with obskit.testing.isolated():
        _record_some()
        status, headers, body = _wsgi_get(obskit.metrics_wsgi_app())
    assert "200 OK" == status
    assert headers["Content-Type"].startswith("text/plain")
    assert b"http_server_request_duration_seconds_count" in body
    assert b"trace_id" not in body


def test_wsgi_openmetrics_with_exemplars_and_gzip() -> None:
    """Accept OpenMetrics + gzip gives compressed OpenMetrics carrying the exemplar."""
    with obskit.testing.isolated(tracing=False):  # 0x1234 is no real (kept) trace
        _record_some()
        _, headers, body = _wsgi_get(
            obskit.metrics_wsgi_app(), accept=OPENMETRICS, accept_encoding="gzip"
        )
    assert "gzip" == headers["Content-Encoding"]
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(body).decode()
    assert '{trace_id="00000000000000000000000000001234"}' in text
    assert text.endswith("# EOF\n")


def test_asgi_app_serves_the_runtime() -> None:
    """The ASGI app, created before init(), serves what init() wired."""
    app = obskit.metrics_asgi_app()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [(b"accept", b"*/*")]}
    with obskit.testing.isolated(service_name="asgi-svc"):
        _record_some()
        asyncio.run(app(scope, receive, send))
    assert 200 == sent[0]["status"]
    assert b'service_name="asgi-svc"' in sent[1]["body"]


def test_standalone_server_on_loopback() -> None:
    """start_metrics_server serves the given registry on 127.0.0.1 and stops on close."""
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc(3)
    server = obskit.start_metrics_server(0, registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            body = resp.read()
    finally:
        server.close()
    assert b"demo_things_total 3.0" in body


def test_metrics_port_setting_starts_a_server() -> None:
    """init(metrics_port=0) starts a server bound to the loopback address."""
    from obskit import _live

    with obskit.testing.isolated(metrics_port=0):
        component = _live.metrics()
        assert component is not None
        assert component.server is not None
        assert "127.0.0.1" == component.server.addr
        url = f"http://127.0.0.1:{component.server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert b"obskit_build_info" in resp.read()


@pytest.mark.prometheus
def test_promtool_accepts_the_output() -> None:
    """The real promtool check metrics finds no problem in the text exposition."""
    promtool = require_binary("promtool")
    with obskit.testing.isolated():
        _record_some()
        _, _, body = _wsgi_get(obskit.metrics_wsgi_app())
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()
    assert b"" == result.stdout + result.stderr


def test_openmetrics_output_parses_strictly() -> None:
    """OpenMetrics output (promtool 2.42 reads only text) passes the strict OpenMetrics parser."""
    with obskit.testing.isolated(tracing=False):  # 0x1234 is no real (kept) trace
        _record_some()
        _, _, body = _wsgi_get(obskit.metrics_wsgi_app(), accept=OPENMETRICS)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert "histogram" == families["http_server_request_duration_seconds"].type
    exemplars = [
        s.exemplar for s in families["http_server_request_duration_seconds"].samples if s.exemplar
    ]
    assert [{"trace_id": "00000000000000000000000000001234"}] == [e.labels for e in exemplars]
