"""Helpers for the SLO tests: PromQL checked by the real promtool, and the SLO part of the
end-to-end test (tests/test_prometheus_e2e.py), whose Prometheus loads the generated rules."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import require_binary
from obskit import slo
from obskit._yaml import dump
from obskit.demo.services import FAILURE_ONE_IN, _stable_fraction
from obskit.slo import rules
from prometheus_support import Prometheus


def check_promql(expressions: Sequence[str], workdir: Path) -> None:
    """Fail unless promtool parses every expression (each wrapped in a recording rule)."""
    promtool = require_binary("promtool")
    rules = [{"record": f"check:expr_{k}", "expr": e} for k, e in enumerate(expressions)]
    path = workdir / "check-promql.yml"
    path.write_text(dump({"groups": [{"name": "check", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert 0 == result.returncode, result.stdout + result.stderr


# --- end to end ------------------------------------------------------------------------------

E2E_TENANTS = ("slo-e2e-a", "slo-e2e-b")  # fresh tenants: no series of theirs before the test
E2E_TENANT_MATCHER = 'tenant_id!~"slo-e2e-.*"'  # what the other e2e assertions leave out
E2E_OBJECTIVE = slo.Objective(
    name="checkout-availability",
    indicator=slo.HttpAvailability(routes=("/checkout",)),
    target="99%",
    owner="payments",
    by_tenant=True,
    where={"job": "shop"},
)


def request_ids(prefix: str, failing: bool, count: int) -> list[str]:
    """Request ids the demo fails (or serves) by their hash."""
    out: list[str] = []
    k = 0
    while len(out) < count:
        request_id = f"{prefix}-{k}"
        if (_stable_fraction(request_id) < 1 / FAILURE_ONE_IN) == failing:
            out.append(request_id)
        k += 1
    return out


def send_checkouts(shop_url: str, plan: list[tuple[str, str]]) -> list[int]:
    """POST /checkout for each (request id, tenant); the statuses."""
    # One connection per request: uvicorn closes a kept-alive connection after a 500.
    with httpx.Client(base_url=shop_url, timeout=15, headers={"connection": "close"}) as client:

        def send(item: tuple[str, str]) -> int:
            request_id, tenant = item
            headers = {"x-request-id": request_id, "x-tenant-id": tenant}
            return client.post("/checkout", headers=headers).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(send, plan))


def prepare_slo_rules(shop_url: str, workdir: Path) -> Path:
    """Before Prometheus starts: the SLO rule file (dense, every second), and a warm-up that
    creates every series of the fresh tenants with counts that dwarf rate()'s extrapolation at
    a window's start. Prometheus' first sample of each then holds the warm-up, so only what
    the test sends afterwards is an increase. The tenant guard counts a fresh tenant's first
    request under __other__ until it admits the tenant: two product views admit each first."""
    with httpx.Client(base_url=shop_url, timeout=15) as client:
        for tenant in E2E_TENANTS:
            for _ in range(2):
                client.get("/products/sku-slo", headers={"x-tenant-id": tenant})
    warm = [
        (i, t) for t in E2E_TENANTS for f in (True, False) for i in request_ids(f"w-{t}", f, 30)
    ]
    assert 30 * len(E2E_TENANTS) == sum(s >= 500 for s in send_checkouts(shop_url, warm))
    rule_file = workdir / "slo-rules.yml"
    options = rules.RuleOptions(interval="1s", dense=True)
    rule_file.write_text(rules.render(slo.ObjectiveSet((E2E_OBJECTIVE,), service="shop"), options))
    return rule_file


def check_recorded_sli(shop_url: str, prometheus: Prometheus) -> None:
    """Send a batch with known failures per fresh tenant; the recorded 5-minute SLI of each
    tenant is its failures / requests, and every generated rule evaluates without error."""
    prometheus.wait_for(f'{rules.rate_name("total", 300)}{{tenant_id="slo-e2e-b"}}')
    prometheus.scraped_after("shop", time.time())
    sent = {
        "slo-e2e-a": (request_ids("a", True, 7), request_ids("a", False, 93)),
        "slo-e2e-b": ([], request_ids("b", False, 60)),
    }
    plan = [(i, t) for t, (bad, good) in sent.items() for i in [*bad, *good]]
    assert 7 == sum(s >= 500 for s in send_checkouts(shop_url, plan))
    prometheus.scraped_after("shop", time.time())

    expected = {t: len(bad) / (len(bad) + len(good)) for t, (bad, good) in sent.items()}
    selector = f'{rules.ratio_name(300)}{{slo="{E2E_OBJECTIVE.name}",tenant_id=~"slo-e2e-.*"}}'
    deadline = time.monotonic() + 30
    got: dict[str, float] = {}
    while time.monotonic() < deadline:
        got = {r["metric"]["tenant_id"]: float(r["value"][1]) for r in prometheus.query(selector)}
        if got.keys() == expected.keys() and all(
            got[t] == pytest.approx(v, rel=1e-9, abs=1e-12) for t, v in expected.items()
        ):
            break
        time.sleep(0.5)
    assert expected == pytest.approx(got, rel=1e-9, abs=1e-12)

    groups = {g["name"]: g for g in prometheus.rule_groups()}
    name = E2E_OBJECTIVE.name
    assert {f"slo:{name}:{s}" for s in ("rates", "5m", "1h", "alerts")} <= groups.keys()
    for group in groups.values():
        for rule in group["rules"]:
            assert "ok" == rule["health"], (group["name"], rule.get("lastError"))
    budget = prometheus.query(f'{rules.BUDGET_REMAINING}{{tenant_id="slo-e2e-b"}}')
    assert [1.0] == [float(r["value"][1]) for r in budget]  # no failure: the whole budget
