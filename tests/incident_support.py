"""A scripted incident for the timeline's end-to-end test: real services, real traffic.

:class:`Shop` runs the demo's ``inventory`` and ``shop`` processes (JSON logs and kept spans in
files) and can redeploy the shop on the same port with another version. :class:`Traffic` sends
a steady, bounded stream of checkouts and product views of three tenants from a thread; every
checkout id is one the demo does not fail by itself, so the only errors are the injected ones.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import subprocess_env
from obskit.demo.services import FAILURE_ONE_IN, _stable_fraction
from prometheus_support import free_port

TENANTS = ("acme", "initech", "hooli")


def _wait_ready(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/metrics/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not start within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class Shop:
    """The demo's two services on loopback; the shop can be redeployed on its port."""

    out: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    inventory_url: str = ""

    @property
    def url(self) -> str:
        """The shop's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """The shop's JSON log file (every version appends to it)."""
        return self.out / "shop.log"

    @property
    def spans(self) -> Path:
        """The shop's kept-span file."""
        return self.out / "shop-spans.jsonl"

    def _start(self, role: str, port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
        env = subprocess_env(
            OBSKIT_LOG_FORMAT="json",
            OBSKIT_LOG_STREAM="stdout",
            OBSKIT_TRACE_SINK=str(self.out / f"{role}-spans.jsonl"),
            PYTHONUNBUFFERED="1",
        )
        command = [sys.executable, "-m", "obskit.demo.services", role, "--port", str(port), *args]
        with log.open("ab") as handle:
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        self.processes.append(process)
        return process

    def start(self, version: str, *args: str) -> None:
        """Start the inventory (once) and the shop at ``version``."""
        if not self.inventory_url:
            port = free_port()
            inventory = self._start("inventory", port, self.out / "inventory.log")
            self.inventory_url = f"http://127.0.0.1:{port}"
            _wait_ready(self.inventory_url, inventory, "inventory")
        shop = self._start(
            "shop",
            self.port,
            self.log,
            "--inventory",
            self.inventory_url,
            "--db",
            str(self.out / "orders.db"),
            "--version",
            version,
            *args,
        )
        _wait_ready(self.url, shop, f"shop {version}")

    def redeploy(self, version: str, *args: str) -> None:
        """Stop the running shop and start ``version`` on the same port (a new process), warmed
        up before traffic returns, as a readiness check would: a product view, a checkout and
        a failing checkout (a process' first exception pays for loading what formats it)."""
        _stop(self.processes[-1])
        self.start(version, *args)
        doomed = next(
            f"warm-{k}"
            for k in itertools.count()
            if _stable_fraction(f"warm-{k}") < 1 / FAILURE_ONE_IN
        )
        with httpx.Client(base_url=self.url, timeout=10, headers={"connection": "close"}) as client:
            for request_id in (next(good_checkout_ids("warm")), doomed):
                headers = {"x-tenant-id": "warm-up", "x-request-id": request_id}
                client.get("/products/sku-warm", headers=headers)
                client.post("/checkout", headers=headers)

    def stop(self) -> None:
        """Stop every process started."""
        for process in reversed(self.processes):
            _stop(process)


def good_checkout_ids(prefix: str) -> Iterator[str]:
    """Request ids the demo itself never fails (its failures are chosen by the id's hash)."""
    return (
        f"{prefix}-{k}"
        for k in itertools.count()
        if _stable_fraction(f"{prefix}-{k}") >= 1 / FAILURE_ONE_IN
    )


class Traffic:
    """Checkouts and product views of three tenants, about ``rate`` a second, from a thread,
    bounded by ``limit_s`` seconds. Connection errors (a shop restarting) are counted, not
    raised."""

    def __init__(self, url: str, rate: float = 30.0, limit_s: float = 150.0) -> None:
        self.url, self.rate, self.limit_s = url, rate, limit_s
        self.statuses: dict[tuple[str, str], list[int]] = {}
        self.unreachable = 0
        self._stop = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._run, name="incident-traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._flowing.set()
        self._thread.join(timeout=30)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No new request inside the block (a deploy drains the instance first)."""
        self._flowing.clear()
        try:
            time.sleep(0.5)  # requests in flight finish
            yield
        finally:
            self._flowing.set()

    def _send(self, client: httpx.Client, method: str, path: str, rid: str, tenant: str) -> None:
        route = "/checkout" if path == "/checkout" else "/products/{product_id}"
        headers = {"x-request-id": rid, "x-tenant-id": tenant}
        try:
            status = client.request(method, path, headers=headers).status_code
        except httpx.HTTPError:
            self.unreachable += 1
            return
        self.statuses.setdefault((route, tenant), []).append(status)

    def _run(self) -> None:
        ids = good_checkout_ids("incident")
        began = time.monotonic()
        # One connection per request: uvicorn closes a kept-alive connection after a 500.
        with (
            httpx.Client(base_url=self.url, timeout=5, headers={"connection": "close"}) as client,
            ThreadPoolExecutor(max_workers=4) as pool,
        ):
            for n in itertools.count():
                if self._stop.is_set() or time.monotonic() - began > self.limit_s:
                    return
                self._flowing.wait(timeout=self.limit_s)
                tenant = TENANTS[n % len(TENANTS)]
                if n % 2:
                    pool.submit(self._send, client, "POST", "/checkout", next(ids), tenant)
                else:
                    pool.submit(
                        self._send, client, "GET", f"/products/sku-{n % 7}", f"p-{n}", tenant
                    )
                time.sleep(1 / self.rate)
