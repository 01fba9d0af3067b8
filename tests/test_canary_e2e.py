"""The judge against real services: a real Prometheus, three demo shops, one with a regression.

Shops ``a`` and ``b`` run version 1.0.0; shop ``c`` runs 2.0.0 with the injected regression
(tenant ``initech``'s checkouts wait on a pool of one connection): its p99 rises for that tenant
while errors stay flat. Prometheus scrapes all three while the same traffic drives each; ``watch``
scrapes the shops itself at the same time. Then ``judge`` looks back over the window.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from obskit.canary import Report, judge, watch
from obskit.demo import traffic
from prometheus_support import Target, free_port

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

TENANT = "initech"
REQUESTS = 900
# Checkouts and product views of three tenants (none of them the demo's slow-inventory one).
MIX = (("initech", 0.5), ("acme", 0.25), ("hooli", 0.25))
OPTIONS: dict[str, Any] = {"by": ["tenant_id"], "min_requests": 60}


def _service(out: Path, role: str, name: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = subprocess_env(
        OBSKIT_LOG_STREAM="stdout", OBSKIT_ACCESS_LOG="false", OBSKIT_TRACING="false"
    )
    command = [sys.executable, "-m", "obskit.demo.services", role, "--port", str(port), *args]
    with (out / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"service at {url} exited"
        try:
            with urllib.request.urlopen(f"{url}/metrics/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not start")


@pytest.fixture(scope="module")
def shops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Inventory plus shops a (1.0.0), b (1.0.0) and c (2.0.0, the pool regression)."""
    out = tmp_path_factory.mktemp("canary-shops")
    started: list[subprocess.Popen[bytes]] = []
    try:
        inventory, inventory_url = _service(out, "inventory", "inventory")
        started.append(inventory)
        _wait_ready(inventory_url, inventory)
        urls = {}
        for name, version, size in (("a", "1.0.0", 4), ("b", "1.0.0", 4), ("c", "2.0.0", 1)):
            process, url = _service(
                out,
                "shop",
                f"shop-{name}",
                "--inventory",
                inventory_url,
                "--db",
                str(out / f"orders-{name}.db"),
                "--version",
                version,
                "--tenant-pool",
                f"{TENANT}:{size}:400",
            )
            started.append(process)
            urls[name] = url
        for process, url in zip(started[1:], urls.values(), strict=True):
            _wait_ready(url, process)
        yield urls
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def rollout(shops: dict[str, str], prometheus_factory: Any) -> dict[str, Any]:
    """Prometheus and two watches running while the same traffic drives the three shops."""
    targets = [
        Target.from_url(f"shop-{name}", f"{url}/metrics/", arm=name) for name, url in shops.items()
    ]
    prometheus = prometheus_factory(targets)
    started = time.time()
    watches: dict[str, Report] = {}

    def run_watch(name: str, baseline: str, canary: str) -> None:
        watches[name] = watch(
            [f"{baseline}/metrics/"],
            [f"{canary}/metrics/"],
            interval=3.0,
            max_duration=50.0,
            **OPTIONS,
        )

    threads = [
        threading.Thread(target=run_watch, args=("regression", shops["a"], shops["c"])),
        threading.Thread(target=run_watch, args=("aa", shops["a"], shops["b"])),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the watches' first scrape: their starting point

    async def drive() -> None:
        plan = _plan(REQUESTS)
        await asyncio.gather(
            *(traffic.drive(url, plan, concurrency=8, deadline_s=45) for url in shops.values())
        )

    asyncio.run(drive())
    finished = time.time()
    for job in ("shop-a", "shop-b", "shop-c"):
        prometheus.scraped_after(job, finished + 1.0)
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads)
    since = f"{int(time.time() - started) + 5}s"
    return {"prometheus": prometheus, "since": since, "watches": watches}


def _plan(count: int) -> list[traffic.Planned]:
    rng = random.Random(3)
    names, weights = [t for t, _ in MIX], [w for _, w in MIX]
    planned = []
    for n in range(count):
        tenant = rng.choices(names, weights)[0]
        if rng.random() < 0.7:
            planned.append(traffic.Planned(f"c-{n}", "POST", "/checkout", "/checkout", tenant))
        else:
            path = f"/products/sku-{rng.randrange(100)}"
            planned.append(traffic.Planned(f"c-{n}", "GET", path, "/products/{product_id}", tenant))
    return planned


def _names(report: Report) -> set[tuple[str, str]]:
    return {(c.metric, c.segment_text) for c in report.failed()}


def _assert_regression_named(report: Report, *, complete: bool = True) -> None:
    assert "FAIL" == report.verdict, report.table(everything=True)
    failed = _names(report)
    # The first decisive look of ``watch`` may come from either tail quantile: the pool of one
    # moves p95 and p99 together, and which crosses first depends on the machine's load.
    tails = ("latency p99",) if complete else ("latency p95", "latency p99")
    assert any(metric in tails for metric, _ in failed), report.table(everything=True)
    assert not any(metric == "error rate" for metric, _ in failed), report.table(everything=True)
    if not complete:
        return
    assert ("latency p99", f"tenant_id={TENANT}") in failed, report.table(everything=True)
    assert any(f"tenant_id={TENANT}" in reason for reason in report.reasons)
    assert ("pool wait p99", f"db_client_connection_pool_name=orders-{TENANT}") in failed
    assert any("pool wait" in reason for reason in report.reasons)


@pytest.mark.timeout(300)
def test_judge_names_p99_the_tenant_and_the_pool_wait(rollout: dict[str, Any]) -> None:
    """v1 against v2 through Prometheus: FAIL on p99 for the tenant, pool waits moved with it."""
    report = judge(
        rollout["prometheus"].base,
        '{service_name="shop",service_version="1.0.0"}',
        '{service_name="shop",service_version="2.0.0"}',
        rollout["since"],
        step="2s",
        **OPTIONS,
    )
    _assert_regression_named(report)


@pytest.mark.timeout(300)
def test_judge_passes_an_aa_pair(rollout: dict[str, Any]) -> None:
    """Two identical v1 shops (selected by a target label) PASS, through the command line."""
    env = subprocess_env()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "obskit.cli",
            "canary",
            "judge",
            "--prometheus",
            rollout["prometheus"].base,
            "--baseline",
            '{arm="a"}',
            "--canary",
            '{arm="b"}',
            "--since",
            rollout["since"],
            "--step",
            "2s",
            "--by",
            "tenant_id",
            "--min-requests",
            "60",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert "PASS" == report["verdict"], result.stdout[-3000:]
    assert 0 == result.returncode
    assert report["queries"] > 0


@pytest.mark.timeout(300)
def test_watch_reaches_the_same_verdicts_without_prometheus(rollout: dict[str, Any]) -> None:
    """watch, scraping the shops itself, fails v2 on a tail quantile (errors flat) and passes
    the A/A pair.

    It stops at the first decisive look, which may come from the aggregate p99 before the
    tenant's segment or the pool-wait cause has enough evidence of its own: those are named by
    the judge's look over the whole window (above), not required here.
    """
    watches = rollout["watches"]
    _assert_regression_named(watches["regression"], complete=False)
    assert "PASS" == watches["aa"].verdict, watches["aa"].table(everything=True)


def test_judge_exits_2_when_prometheus_is_unreachable() -> None:
    """An unreachable Prometheus is a source error: exit status 2 and a message on stderr."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "obskit.cli",
            "canary",
            "judge",
            "--prometheus",
            f"http://127.0.0.1:{free_port()}",
            "--baseline",
            '{v="1"}',
            "--canary",
            '{v="2"}',
            "--since",
            "5m",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 2 == result.returncode
    assert "obskit canary:" in result.stderr
