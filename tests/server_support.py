"""Real servers on loopback for the tests: uvicorn or gunicorn running a service in web_apps/."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from conftest import PYTHON, subprocess_env

APPS = Path(__file__).resolve().parent / "web_apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running test service: its URL, metrics URL, log file and span file."""

    url: str
    metrics_url: str
    log: Path
    spans: Path

    def lines(self) -> list[dict[str, Any]]:
        """The JSON lines the service wrote (non-JSON lines skipped)."""
        out = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    out.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return out

    def access(self) -> list[dict[str, Any]]:
        """obskit's access lines."""
        return [line for line in self.lines() if line.get("logger") == "obskit.access"]

    def span_records(self) -> list[dict[str, Any]]:
        """Spans the service exported."""
        if not self.spans.exists():
            return []
        return [json.loads(raw) for raw in self.spans.read_text().splitlines() if raw]

    def metrics(self) -> str:
        """The service's Prometheus exposition."""
        return httpx.get(self.metrics_url, timeout=10).text


def wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait until ``port`` accepts a connection (the server died or the deadline passed: raise)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not open")


@contextmanager
def serve(kind: str, target: str, tmp_path: Path, *extra: str, **env: str) -> Iterator[Service]:
    """Run ``target`` under uvicorn or gunicorn on a free loopback port until the block ends."""
    port, metrics_port = free_port(), free_port()
    name = target.replace(":", "_")
    log = tmp_path / f"{name}.{port}.log"
    spans = tmp_path / f"{name}.{port}.spans.jsonl"
    if kind == "uvicorn":
        argv = [PYTHON, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    else:
        argv = [PYTHON, "-m", "gunicorn", target, "-b", f"127.0.0.1:{port}", "--workers", "1"]
        argv += ["--access-logfile", "-"]  # on, to prove obskit's line replaces gunicorn's
    argv += list(extra)
    settings = {"OBSKIT_METRICS_PORT": str(metrics_port), "OBSKIT_TEST_SPANS": str(spans)}
    settings.update(env)  # (OBSKIT_TEST_SPANS="" keeps obskit's own span pipeline)
    child_env = subprocess_env(**settings)
    child_env["PYTHONPATH"] = os.pathsep.join([str(APPS), child_env["PYTHONPATH"]])
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=APPS, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        wait_port(port, proc, deadline)
        wait_port(metrics_port, proc, deadline)
        yield Service(
            f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log, spans
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def routes_of(exposition: str) -> set[str]:
    routes = set()
    for line in exposition.splitlines():
        if line.startswith("http_server_request_duration_seconds_count{"):
            routes.add(line.split('http_route="', 1)[1].split('"', 1)[0])
    return routes


def get_all(service: Service, paths: list[str]) -> list[int]:
    with httpx.Client(base_url=service.url, timeout=10) as client:
        return [client.get(path).status_code for path in paths]


def settle(service: Service, count: int) -> None:
    """Wait (bounded) until ``count`` access lines are written."""
    deadline = time.monotonic() + 10
    while len(service.access()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
