"""The demo's service processes: started on a free loopback port, waited for, scraped, stopped.

Each service runs in its own process under a real uvicorn server on 127.0.0.1. With no endpoint
configured nothing leaves the machine: kept spans go to the service's local JSON-lines sink in
the artifacts directory, its logs to a file of its own.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = [
    "SLOW_THRESHOLD_MS",
    "Service",
    "child_env",
    "scrape",
    "scrape_url",
    "start",
    "stop",
    "wait_ready",
]

# The slow tenant's dependency takes ~300 ms: a trace above 250 ms counts as slow.
SLOW_THRESHOLD_MS = "250"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclasses.dataclass
class Service:
    """One running service process and where its artifacts go."""

    name: str
    role: str
    version: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    spans_path: Path
    started_at: float

    @property
    def url(self) -> str:
        """Its base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Its ``/metrics/`` endpoint."""
        return f"{self.url}/metrics/"

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment of a child process: none of the user's obskit or OpenTelemetry settings,
    and this very obskit on the path (installed or from a source tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(name: str, role: str, out: Path, args: list[str], version: str = "1.0.0") -> Service:
    """Start ``python -m obskit.demo.services ROLE`` as ``name``; its output goes to a log."""
    port = _free_port()
    log_path, spans_path = out / f"{name}.log", out / f"{name}-spans.jsonl"
    env = child_env()
    env.update(
        OBSKIT_TRACE_SINK=str(spans_path),
        OBSKIT_LOG_FORMAT="json",
        OBSKIT_LOG_STREAM="stdout",
        OBSKIT_SLOW_THRESHOLD_MS=SLOW_THRESHOLD_MS,
    )
    command = [sys.executable, "-m", "obskit.demo.services", role, "--port", str(port)]
    command += ["--version", version, *args]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Service(name, role, version, port, process, log_path, spans_path, time.time())


def wait_ready(service: Service, deadline_s: float = 60.0) -> None:
    """Return once ``/metrics/`` answers; RuntimeError if the process exits or never answers."""
    stop_at = time.monotonic() + deadline_s
    while time.monotonic() < stop_at:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited early; see {service.log_path}")
        try:
            with urllib.request.urlopen(service.metrics_url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not start within {deadline_s:.0f} s")


def scrape(service: Service, timeout: float = 10.0, openmetrics: bool = False) -> str:
    """The service's exposition now (OpenMetrics, with exemplars, when asked)."""
    return scrape_url(service.metrics_url, timeout, openmetrics)


def scrape_url(url: str, timeout: float = 10.0, openmetrics: bool = False) -> str:
    """The exposition at ``url`` now."""
    request = urllib.request.Request(url, headers={"Accept": OPENMETRICS} if openmetrics else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return str(response.read().decode("utf-8"))


def stop(service: Service, timeout: float = 15.0) -> None:
    """SIGTERM (``obskit.shutdown()`` decides and flushes every trace), then kill if it hangs."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=5.0)
