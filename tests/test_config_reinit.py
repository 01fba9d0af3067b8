"""A second init() changes only what it names, keeps the state of what it does not, and says so."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import obskit
import obskit.testing
from obskit import _runtime
from obskit._config import OBJECTS, SPECS

COUNT = "http_server_request_duration_seconds_count"


@pytest.fixture(autouse=True)
def _private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for var in [v for v in os.environ if v.startswith(("OBSKIT_", "OTEL_"))]:
        monkeypatch.delenv(var)


async def _item(request: Request) -> Response:
    return PlainTextResponse("ok")


APP = obskit.ASGIMiddleware(Starlette(routes=[Route("/items/{item_id}", _item)]))


def _get(path: str) -> int:
    async def go() -> int:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get(path)).status_code

    return asyncio.run(go())


def _requests(registry: CollectorRegistry) -> float:
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == COUNT and sample.labels.get("http_route") == "/items/{item_id}":
                total += sample.value
    return total


def test_log_level_change_keeps_red_counts() -> None:
    """init(log_level=...) after traffic leaves the RED counters counting on, not reset."""
    registry = CollectorRegistry()
    obskit.init(service_name="shop", registry=registry, log_stream="stderr")
    assert 200 == _get("/items/1")
    assert 1.0 == _requests(registry)
    obskit.init(log_level="debug")
    assert 1.0 == _requests(registry)
    assert 200 == _get("/items/2")
    assert 2.0 == _requests(registry)
    assert "debug" == obskit.doctor()["settings"]["log_level"]


def test_bare_init_keeps_what_the_first_named() -> None:
    """A bare init() after init(service_name=...) changes nothing (and rebuilds nothing)."""
    registry = CollectorRegistry()
    obskit.init(service_name="checkout", registry=registry, log_stream="stderr")
    first = _runtime.current()
    obskit.init()
    assert first is _runtime.current()
    assert "checkout" == obskit.doctor()["settings"]["service_name"]
    obskit.init(environment="prod")
    settings = obskit.doctor()["settings"]
    assert ("checkout", "prod") == (settings["service_name"], settings["environment"])


def test_shutdown_forgets_the_named_settings() -> None:
    """After shutdown(), init() starts from the environment and defaults again."""
    obskit.init(service_name="checkout", registry=CollectorRegistry(), log_stream="stderr")
    obskit.shutdown()
    obskit.init(registry=CollectorRegistry(), log_stream="stderr")
    assert "unknown_service" == obskit.doctor()["settings"]["service_name"]


def test_reconfiguration_line_shows_old_and_new_values() -> None:
    """The log line names each changed setting with its old and new value, and what was rebuilt."""
    obskit.init(service_name="shop", registry=CollectorRegistry(), log_stream="stderr")
    with obskit.testing.capture_logs() as lines:
        obskit.init(log_level="debug", baseline_ratio=0.5)
    events = [line["event"] for line in lines if "reconfigured" in str(line.get("event"))]
    assert 1 == len(events)
    assert "log_level: 'info' → 'debug'" in events[0]
    assert "baseline_ratio: 0.01 → 0.5" in events[0]
    assert "rebuilt: tracing, web" in events[0]
    assert "kept: metrics, collectors" in events[0]


def test_reconfiguration_line_hides_credentials_in_urls() -> None:
    """An endpoint's user:password never reaches the reconfiguration line."""
    obskit.init(registry=CollectorRegistry(), log_stream="stderr")
    with obskit.testing.capture_logs() as lines:
        obskit.init(otlp_endpoint="http://user:hunter2@127.0.0.1:4318")
    events = [str(line["event"]) for line in lines if "reconfigured" in str(line.get("event"))]
    assert 1 == len(events)
    assert "hunter2" not in events[0]
    assert "http://127.0.0.1:4318" in events[0]


def test_metrics_change_rebuilds_metrics_without_duplicate_collectors() -> None:
    """Changing a metrics setting rebuilds that part once: one collector of each, scrapes work."""
    registry = CollectorRegistry()
    obskit.init(registry=registry, log_stream="stderr")
    before = len(registry._collector_to_names)
    for top_k in (5, 6, 7):
        obskit.init(label_top_k=top_k)
    assert before == len(registry._collector_to_names)
    assert b"obskit_build_info" in generate_latest(registry)


def test_every_setting_is_read_live_or_by_a_part() -> None:
    """Each setting either is applied afresh at every init() or rebuilds the parts that read it."""
    covered = set(_runtime.LIVE) | set(_runtime.EVERYTHING)
    for part in _runtime.BUILDERS:
        covered |= part.reads
    names = [spec.name for spec in SPECS] + [obj.name for obj in OBJECTS]
    missing = [name for name in names if name not in covered]
    assert [] == missing, "add them to _runtime.LIVE or to the reads of the parts that use them"


def test_metrics_server_logs_its_address_and_doctor_lists_it() -> None:
    """A started metrics server says where it listens, and doctor() names the same URL."""
    with obskit.testing.capture_logs() as lines:
        obskit.init(metrics_port=0, registry=CollectorRegistry(), log_stream="stderr")
    url = obskit.doctor()["wired"]["metrics_server"]
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/metrics")
    assert any(f"obskit metrics: serving {url}" == line["event"] for line in lines)
    assert 200 == httpx.get(url, timeout=10).status_code


def test_metrics_server_keeps_its_port_across_unrelated_changes() -> None:
    """The metrics server is not restarted (and keeps its port) when only tracing changes."""
    obskit.init(metrics_port=0, registry=CollectorRegistry(), log_stream="stderr")
    url = obskit.doctor()["wired"]["metrics_server"]
    obskit.init(sampling="all")
    assert url == obskit.doctor()["wired"]["metrics_server"]
    assert 200 == httpx.get(url, timeout=10).status_code


def test_metrics_server_moves_when_its_port_changes() -> None:
    """A new metrics_port closes the old server and serves on the new port."""
    registry = CollectorRegistry()
    obskit.init(metrics_port=0, registry=registry, log_stream="stderr")
    old = obskit.doctor()["wired"]["metrics_server"]
    obskit.init(metrics_port=0, label_top_k=3)
    new = obskit.doctor()["wired"]["metrics_server"]
    assert old != new
    assert 200 == httpx.get(new, timeout=10).status_code
    with pytest.raises(httpx.ConnectError):
        httpx.get(old, timeout=2)


def test_declared_defaults_match_the_code() -> None:
    """Every setting's declared default is the value init() uses when nothing is set."""
    from obskit._config import load_settings

    settings = load_settings({}, environ={})
    differs = {
        spec.name: (spec.default, getattr(settings, spec.name))
        for spec in SPECS
        if getattr(settings, spec.name) != spec.default
    }
    assert {} == differs


def test_documented_trace_file_default_is_where_spans_go() -> None:
    """The reference's trace_sink default describes the file the local sink writes."""
    from obskit.tracing.sinks import default_sink_path

    spec = next(spec for spec in SPECS if spec.name == "trace_sink")
    documented = spec.default_doc.replace("<tmp>", tempfile.gettempdir()).replace(
        "<service_name>", "checkout"
    )
    assert default_sink_path("checkout") == documented
    obskit.init(service_name="checkout", registry=CollectorRegistry(), log_stream="stderr")
    assert f"local file {documented}" == obskit.doctor()["wired"]["traces"]
