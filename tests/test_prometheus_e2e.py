"""A real Prometheus scrapes `obskit demo --serve`; PromQL answers match the traffic sent."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from obskit.demo.services import FAILURE_ONE_IN, SLOW_TENANT, _stable_fraction
from prometheus_support import DemoServices, Prometheus, Target
from slo_support import E2E_TENANT_MATCHER, check_recorded_sli, prepare_slo_rules

pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def prometheus(
    demo_service: DemoServices, prometheus_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Prometheus:
    """A real Prometheus (exemplar storage on) scraping the shop every second, with the rules
    `obskit slo rules` writes for a checkout objective (see slo_support.py)."""
    rule_file = prepare_slo_rules(demo_service.shop_url, tmp_path_factory.mktemp("slo"))
    server: Prometheus = prometheus_factory(
        [Target.from_url("shop", demo_service.shop_metrics)], rule_files=[rule_file]
    )
    return server


def _count_by_route(prometheus: Prometheus) -> dict[str, float]:
    result = prometheus.query(
        'sum by (http_route) (http_server_request_duration_seconds_count{job="shop"})'
    )
    return {r["metric"].get("http_route", ""): float(r["value"][1]) for r in result}


def test_promql_matches_the_traffic_sent(
    demo_service: DemoServices, prometheus: Prometheus
) -> None:
    """Request counts, error ratio by route and p99 by route and tenant agree with what was sent."""
    shop_url, out = demo_service.shop_url, demo_service.out
    prometheus.scraped_after("shop", time.time())
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
    prometheus.scraped_after("shop", time.time())
    after = _count_by_route(prometheus)
    for route, count in sent.items():
        assert count == after[route] - before.get(route, 0.0), route

    rate = prometheus.value('sum(rate(http_server_request_duration_seconds_count{job="shop"}[1m]))')
    assert rate is not None
    assert rate > 0

    # Error ratio by route over everything this shop served: the demo's own run plus this test
    # (not the SLO test's tenants, whose warm-up ran before Prometheus started).
    errors = prometheus.query(
        "sum by (http_route) (http_server_request_duration_seconds_count"
        f'{{job="shop",http_response_status_code=~"5..",{E2E_TENANT_MATCHER}}})'
        " / sum by (http_route) (http_server_request_duration_seconds_count"
        f'{{job="shop",{E2E_TENANT_MATCHER}}})',
    )
    ratio = {r["metric"]["http_route"]: float(r["value"][1]) for r in errors}
    demo_sent = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    # The demo's story spreads its requests over several shops: this Prometheus scrapes shop-1.
    demo_checkouts = [
        r for r in demo_sent if r["route"] == "/checkout" and r.get("instance") == "shop-1"
    ]
    demo_failed = sum(1 for r in demo_checkouts if r["status"] >= 500)
    expected = (failing + demo_failed) / (sent["/checkout"] + len(demo_checkouts))
    assert expected == pytest.approx(ratio["/checkout"], rel=1e-9)
    assert 0.0 == ratio.get("/products/{product_id}", 0.0)

    p99 = prometheus.query(
        "histogram_quantile(0.99, sum by (le, http_route, tenant_id) (rate("
        'http_server_request_duration_seconds_bucket{job="shop",http_route="/products/{product_id}"}'
        "[5m])))",
    )
    by_tenant = {r["metric"]["tenant_id"]: float(r["value"][1]) for r in p99}
    assert by_tenant[SLOW_TENANT] > 0.25  # the slow dependency, ~300 ms
    assert by_tenant["acme"] < by_tenant[SLOW_TENANT]


def test_exemplars_link_to_kept_traces(demo_service: DemoServices, prometheus: Prometheus) -> None:
    """Prometheus stores exemplars whose trace ids are traces the tail sampler kept."""
    out = demo_service.out
    now = time.time()
    deadline = time.monotonic() + 30
    trace_ids: set[str] = set()
    while time.monotonic() < deadline and not trace_ids:
        stored = prometheus.exemplars(
            'http_server_request_duration_seconds_bucket{job="shop"}', now - 600, now + 60
        )
        for series in stored:
            for exemplar in series["exemplars"]:
                trace_ids.add(exemplar["labels"]["trace_id"])
        if not trace_ids:
            time.sleep(1)
    assert trace_ids, "no exemplar stored"
    deadline = time.monotonic() + 20
    kept: set[str] = set()
    while time.monotonic() < deadline:
        text = (out / "shop-1-spans.jsonl").read_text()
        kept = {json.loads(line)["trace_id"] for line in text.splitlines() if line.strip()}
        if trace_ids <= kept:
            break
        time.sleep(0.5)
    assert trace_ids <= kept


@pytest.mark.timeout(150)
def test_slo_rules_record_the_error_ratio_sent(
    demo_service: DemoServices, prometheus: Prometheus
) -> None:
    """The generated SLO rules load in this Prometheus and the recorded per-tenant SLI equals
    the error ratio of the requests sent (slo_support.check_recorded_sli)."""
    check_recorded_sli(demo_service.shop_url, prometheus)
