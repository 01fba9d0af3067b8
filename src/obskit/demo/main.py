"""``obskit demo``: two instrumented services, bounded mixed traffic, and the debugging report.

The services run as separate processes under real uvicorn servers on 127.0.0.1 (``shop`` calls
``inventory``). With no endpoint configured nothing leaves the machine: kept spans go to each
service's local JSON-lines sink inside the artifacts directory, logs to a file per service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from obskit._terminal import Style
from obskit.demo import report, traffic

__all__ = ["add_arguments", "run"]

SERVICES = ("inventory", "shop")
DEFAULT_REQUESTS = 2000
# The slow tenant's dependency takes ~300 ms: a trace above 250 ms counts as slow.
SLOW_THRESHOLD_MS = "250"


@dataclasses.dataclass
class Service:
    """One running service process and where its artifacts go."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    spans_path: Path

    @property
    def url(self) -> str:
        """Its base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(name: str, out: Path, extra_args: list[str]) -> Service:
    port = _free_port()
    log_path, spans_path = out / f"{name}.log", out / f"{name}-spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    env.update(
        OBSKIT_TRACE_SINK=str(spans_path),
        OBSKIT_LOG_FORMAT="json",
        OBSKIT_LOG_STREAM="stdout",
        OBSKIT_SLOW_THRESHOLD_MS=SLOW_THRESHOLD_MS,
        PYTHONUNBUFFERED="1",
    )
    # The child imports this very obskit, installed or from a source tree.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "obskit.demo.services", name, "--port", str(port)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, *extra_args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Service(name, port, process, log_path, spans_path)


def _wait_ready(service: Service, deadline_s: float = 30.0) -> None:
    stop_at = time.monotonic() + deadline_s
    while time.monotonic() < stop_at:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited early; see {service.log_path}")
        try:
            with urllib.request.urlopen(f"{service.url}/metrics/", timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not start within {deadline_s:.0f} s")


def _scrape(service: Service) -> str:
    with urllib.request.urlopen(f"{service.url}/metrics/", timeout=10.0) as response:
        return str(response.read().decode("utf-8"))


def _stop(service: Service, timeout: float = 15.0) -> None:
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=5.0)


@contextlib.contextmanager
def _running(out: Path) -> Iterator[dict[str, Service]]:
    services: dict[str, Service] = {}
    try:
        services["inventory"] = _start("inventory", out, [])
        _wait_ready(services["inventory"])
        shop_args = ["--inventory", services["inventory"].url, "--db", str(out / "orders.db")]
        services["shop"] = _start("shop", out, shop_args)
        _wait_ready(services["shop"])
        yield services
    finally:
        for service in reversed(list(services.values())):
            _stop(service)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``obskit demo``'s options."""
    parser.add_argument("--serve", action="store_true", help="keep serving after the report")
    parser.add_argument("--requests", type=int, default=None, help="requests to send")
    parser.add_argument("--out", default=None, help="directory for the artifacts")


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit code."""
    try:
        import httpx  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from obskit._identity import DISTRIBUTION

        print(f"obskit demo needs the demo extra: pip install '{DISTRIBUTION}[demo]' ({exc})")
        return 2
    count = args.requests or DEFAULT_REQUESTS
    if not 1 <= count <= 100_000:
        print("obskit demo: --requests must be between 1 and 100000")
        return 2
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="obskit-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    style = Style.for_stream(sys.stdout)
    print(f"obskit demo: starting shop and inventory on 127.0.0.1 (artifacts in {out})")
    with _running(out) as services:
        shop = services["shop"]
        planned = traffic.plan(count)
        print(f"sending {count} requests from {len(traffic.TENANTS)} tenants to {shop.url} ...")
        started = time.monotonic()
        outcomes = asyncio.run(traffic.drive(shop.url, planned, concurrency=16, deadline_s=90))
        elapsed = time.monotonic() - started
        _write_jsonl(out / "requests.jsonl", [dataclasses.asdict(o) for o in outcomes])
        scrapes = {}
        for name, service in services.items():
            # Root spans end when the response is sent; give the export lanes a moment.
            time.sleep(0.5)
            scrapes[name] = _scrape(service)
            (out / f"{name}-metrics.txt").write_text(scrapes[name])
        if not args.serve:
            for service in reversed(list(services.values())):
                _stop(service)  # SIGTERM: obskit.shutdown() decides and flushes every trace
        figures = report.build(
            out,
            outcomes,
            elapsed,
            scrapes,
            urls={name: f"{service.url}/metrics/" for name, service in services.items()},
        )
        (out / "report.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
        print(report.render(figures, style))
        if args.serve:
            print(f"\nserving: shop metrics at {shop.url}/metrics/ — Ctrl-C to stop", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.signal(signal.SIGTERM, _raise_interrupt)
                while all(s.process.poll() is None for s in services.values()):
                    time.sleep(0.5)
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
