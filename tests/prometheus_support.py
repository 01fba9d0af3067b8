"""A real Prometheus for tests, and a live obskit service for it to scrape.

``start_prometheus`` runs Debian's ``prometheus`` binary on a free loopback port with the scrape
targets (and optionally rule files) a test names, and hands back a :class:`Prometheus` client for
its HTTP API. ``serve_demo`` runs ``obskit demo --serve`` and yields the services' URLs. Both are
context managers that always stop their process; ``conftest.py`` wraps them as fixtures.
Skips on a laptop without Prometheus; fails under ``CI=true`` (``conftest.require_binary``).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import require_binary, subprocess_env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Target:
    """One scrape job: ``host:port`` addresses and the path their metrics are served at."""

    job: str
    addresses: tuple[str, ...]
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, job: str, url: str, **labels: str) -> Target:
        """The job scraping one ``http://host:port/path`` URL."""
        parts = urllib.parse.urlparse(url)
        return cls(job, (parts.netloc,), parts.path or "/metrics", labels)


class Prometheus:
    """A client for one running Prometheus' HTTP API (query, range query, exemplars, alerts)."""

    def __init__(self, base: str, workdir: Path) -> None:
        self.base = base
        self.workdir = workdir

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.base}{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=15) as response:
            body = json.loads(response.read())
        assert "success" == body["status"], body
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector (``at``: a Unix time, default now)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        return list(data["result"])

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """A range query's matrix."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        return list(self._get("/api/v1/query_range", params)["result"])

    def value(self, promql: str, at: float | None = None) -> float | None:
        """The single sample an instant query returns, or None when it returns nothing."""
        result = self.query(promql, at)
        if not result:
            return None
        assert 1 == len(result), result
        return float(result[0]["value"][1])

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``promql`` returns a non-empty result; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.5)
        pytest.fail(f"Prometheus: no result for {promql} within {timeout:g} s")

    def scraped_after(self, job: str, moment: float, timeout: float = 30.0) -> None:
        """Wait until every target of ``job`` was scraped after ``moment`` (a Unix time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(f'timestamp(up{{job="{job}"}})')
            if result and all(float(r["value"][1]) > moment + 0.1 for r in result):
                return
            time.sleep(0.3)
        pytest.fail(f"Prometheus: job {job} not scraped after {moment:.3f}")

    def exemplars(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        """The exemplars stored for the series ``promql`` selects between two Unix times."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return list(self._get("/api/v1/query_exemplars", params))

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts the rule manager holds now (pending and firing)."""
        with urllib.request.urlopen(f"{self.base}/api/v1/alerts", timeout=15) as response:
            return list(json.loads(response.read())["data"]["alerts"])

    def rule_groups(self) -> list[dict[str, Any]]:
        """The loaded rule groups, with their evaluation health and last duration."""
        with urllib.request.urlopen(f"{self.base}/api/v1/rules", timeout=15) as response:
            return list(json.loads(response.read())["data"]["groups"])


def _config(
    targets: Sequence[Target], rule_files: Sequence[Path], interval: str, alertmanager: str | None
) -> str:
    from obskit._yaml import dump

    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": target.job,
                "metrics_path": target.metrics_path,
                "static_configs": [
                    {"targets": list(target.addresses), "labels": dict(target.labels)}
                    if target.labels
                    else {"targets": list(target.addresses)}
                ],
            }
            for target in targets
        ],
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return dump(config)


@contextlib.contextmanager
def start_prometheus(
    workdir: Path,
    targets: Sequence[Target],
    *,
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
    alertmanager: str | None = None,
    wait_up: bool = True,
) -> Iterator[Prometheus]:
    """A real Prometheus (exemplar storage on) scraping ``targets`` every ``interval``.

    With ``wait_up`` it returns once every target answered a scrape. It is stopped on exit.
    """
    binary = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(_config(targets, rule_files, interval, alertmanager))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--web.enable-lifecycle",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        server = Prometheus(f"http://127.0.0.1:{port}", workdir)
        try:
            _wait_ready(server.base, process, log_path)
            if wait_up:
                for target in targets:
                    count = len(target.addresses)
                    server.wait_for(f'count(up{{job="{target.job}"}} == 1) == {count}', 60)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail("prometheus did not become ready within 60 s")


@dataclass
class DemoServices:
    """``obskit demo --serve`` running: the shop's base URL and the artifacts directory."""

    shop_url: str
    out: Path
    output: list[str]

    @property
    def shop_metrics(self) -> str:
        """The shop's metrics URL, as Prometheus scrapes it."""
        return f"{self.shop_url}/metrics/"


_SERVING = re.compile(r"serving: shop metrics at (http://\S+)/metrics/")


@contextlib.contextmanager
def serve_demo(out: Path, requests: int = 50, *extra: str) -> Iterator[DemoServices]:
    """``obskit demo --serve`` after a short run of ``requests``; stopped by SIGTERM on exit."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obskit.cli",
            "demo",
            "--serve",
            "--requests",
            str(requests),
            "--out",
            str(out),
            *extra,
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = None
    seen: list[str] = []
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = _SERVING.search(line)
            if match:
                url = match.group(1)
                break
        assert url is not None, "".join(seen[-30:])
        yield DemoServices(url, out, seen)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
