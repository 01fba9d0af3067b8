"""A real Prometheus scrapes `obskit demo --serve`; PromQL answers match the traffic sent."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import require_binary, subprocess_env
from obskit.demo.services import FAILURE_ONE_IN, SLOW_TENANT, _stable_fraction

pytestmark = pytest.mark.prometheus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`obskit demo --serve` after a short run; yields the shop's base URL and artifacts dir."""
    out = tmp_path_factory.mktemp("serve")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obskit.cli",
            "demo",
            "--serve",
            "--requests",
            "50",
            "--out",
            str(out),
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = None
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"serving: shop metrics at (http://\S+)/metrics/", line)
        if match:
            url = match.group(1)
            break
    try:
        assert url is not None, "".join(seen[-30:])
        yield url, out
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture(scope="module")
def prometheus(demo: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus (exemplar storage on) scraping the shop every second."""
    binary = require_binary("prometheus")
    shop_url, _ = demo
    target = urllib.parse.urlparse(shop_url).netloc
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        "    metrics_path: /metrics/\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = _free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready")
        _wait_for(base, 'up{job="shop"} == 1')
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert "success" == body["status"], body
    return list(body["data"]["result"])


def _wait_for(base: str, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = _query(base, promql)
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"no result for {promql}")


def _count_by_route(base: str) -> dict[str, float]:
    result = _query(
        base, 'sum by (http_route) (http_server_request_duration_seconds_count{job="shop"})'
    )
    return {r["metric"].get("http_route", ""): float(r["value"][1]) for r in result}


def _latest_scrape_after(base: str, moment: float) -> None:
    """Wait until Prometheus has scraped the shop after ``moment`` (a Unix time)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = _query(base, 'timestamp(up{job="shop"})')
        if result and float(result[0]["value"][1]) > moment + 0.1:
            return
        time.sleep(0.3)
    pytest.fail("no scrape after the traffic")


def test_promql_matches_the_traffic_sent(demo: tuple[str, Path], prometheus: str) -> None:
    """Request counts, error ratio by route and p99 by route and tenant agree with what was sent."""
    shop_url, out = demo
    _latest_scrape_after(prometheus, time.time())
    before = _count_by_route(prometheus)
    sent: dict[str, int] = {"/checkout": 0, "/products/{product_id}": 0}
    # Checkout ids chosen so that a known number of them fail (the demo fails by id hash).
    doomed = [
        f"e2e-x{k}" for k in range(10_000) if _stable_fraction(f"e2e-x{k}") < 1 / FAILURE_ONE_IN
    ]
    checkout_ids = [*doomed[:4], *(f"e2e-c{k}" for k in range(116))]
    failing = sum(_stable_fraction(i) < 1 / FAILURE_ONE_IN for i in checkout_ids)
    plan = []
    for n in range(240):
        tenant = (SLOW_TENANT, "acme", "initech")[n % 3]
        if n % 2:
            plan.append(("POST", "/checkout", checkout_ids[n // 2], tenant))
            sent["/checkout"] += 1
        else:
            plan.append(("GET", f"/products/sku-{n:04d}", f"e2e-p{n}", tenant))
            sent["/products/{product_id}"] += 1
    # One connection per request: uvicorn closes a kept-alive connection after a 500.
    with httpx.Client(base_url=shop_url, timeout=15, headers={"connection": "close"}) as client:

        def send(item: tuple[str, str, str, str]) -> int:
            method, path, request_id, tenant = item
            headers = {"x-request-id": request_id, "x-tenant-id": tenant}
            return client.request(method, path, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(send, plan))
    assert failing == sum(1 for status in statuses if status >= 500)
    assert failing >= 4
    _latest_scrape_after(prometheus, time.time())
    after = _count_by_route(prometheus)
    for route, count in sent.items():
        assert count == after[route] - before.get(route, 0.0), route

    rate = _query(
        prometheus, 'sum(rate(http_server_request_duration_seconds_count{job="shop"}[1m]))'
    )
    assert float(rate[0]["value"][1]) > 0

    # Error ratio by route over everything this shop served: the demo's own run plus this test.
    errors = _query(
        prometheus,
        "sum by (http_route) (http_server_request_duration_seconds_count"
        '{job="shop",http_response_status_code=~"5.."})'
        ' / sum by (http_route) (http_server_request_duration_seconds_count{job="shop"})',
    )
    ratio = {r["metric"]["http_route"]: float(r["value"][1]) for r in errors}
    demo_sent = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    demo_checkouts = [r for r in demo_sent if r["route"] == "/checkout"]
    demo_failed = sum(1 for r in demo_checkouts if r["status"] >= 500)
    expected = (failing + demo_failed) / (sent["/checkout"] + len(demo_checkouts))
    assert expected == pytest.approx(ratio["/checkout"], rel=1e-9)
    assert 0.0 == ratio.get("/products/{product_id}", 0.0)

    p99 = _query(
        prometheus,
        "histogram_quantile(0.99, sum by (le, http_route, tenant_id) (rate("
        'http_server_request_duration_seconds_bucket{job="shop",http_route="/products/{product_id}"}'
        "[5m])))",
    )
    by_tenant = {r["metric"]["tenant_id"]: float(r["value"][1]) for r in p99}
    assert by_tenant[SLOW_TENANT] > 0.25  # the slow dependency, ~300 ms
    assert by_tenant["acme"] < by_tenant[SLOW_TENANT]


def test_exemplars_link_to_kept_traces(demo: tuple[str, Path], prometheus: str) -> None:
    """Prometheus stores exemplars whose trace ids are traces the tail sampler kept."""
    _, out = demo
    now = time.time()
    url = f"{prometheus}/api/v1/query_exemplars?" + urllib.parse.urlencode(
        {
            "query": 'http_server_request_duration_seconds_bucket{job="shop"}',
            "start": str(now - 600),
            "end": str(now + 60),
        }
    )
    deadline = time.monotonic() + 30
    trace_ids: set[str] = set()
    while time.monotonic() < deadline and not trace_ids:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        for series in body["data"]:
            for exemplar in series["exemplars"]:
                trace_ids.add(exemplar["labels"]["trace_id"])
        if not trace_ids:
            time.sleep(1)
    assert trace_ids, "no exemplar stored"
    deadline = time.monotonic() + 20
    kept: set[str] = set()
    while time.monotonic() < deadline:
        text = (out / "shop-spans.jsonl").read_text()
        kept = {json.loads(line)["trace_id"] for line in text.splitlines() if line.strip()}
        if trace_ids <= kept:
            break
        time.sleep(0.5)
    assert trace_ids <= kept
