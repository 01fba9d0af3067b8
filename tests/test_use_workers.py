"""Multi-worker mode: every worker's per-process USE series reach any worker's scrape."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

import obskit.testing
from conftest import PYTHON, require_binary, subprocess_env
from obskit import _live


def test_published_with_pid_and_status_once(tmp_path: Path) -> None:
    """With shared files, gauges (status included) carry the pid, counters are summed, once each."""
    promtool = require_binary("promtool")
    with obskit.testing.isolated(multiprocess_dir=str(tmp_path)):
        component = _live.metrics()
        assert component is not None
        text = generate_latest(component.scrape_source()).decode()
    pid = str(os.getpid())
    assert re.search(rf'^process_threads\{{pid="{pid}"\}} [1-9]', text, re.M)
    assert re.search(r'^process_cpu_time_seconds_total\{cpu_mode="user"\} ', text, re.M)
    up = rf'^obskit_collector_up\{{collector="process",pid="{pid}"\}} 1'
    assert 1 == len(re.findall(up, text, re.M))
    assert 1 == text.count("# TYPE obskit_collector_up gauge")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()


# Tracing off: this test is about the USE collectors' fork handling, not the tracer's.
APP = """
import obskit
obskit.init(service_name="use-workers", tracing=False)
app = obskit.metrics_wsgi_app()
"""


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["import-per-worker", "preload"])
def test_gunicorn_workers_each_have_their_series(tmp_path: Path, preload: bool) -> None:
    """Under real gunicorn with two workers, one scrape shows the threads gauge of both pids.

    With --preload, init() runs in the master and the workers inherit it by fork.
    """
    pytest.importorskip("gunicorn")
    (tmp_path / "use_app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = subprocess_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path), subprocess_env()["PYTHONPATH"]])
    )
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            *(["--preload"] if preload else []),
            "use_app:app",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(pids) < 2:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            found = set(re.findall(r'^process_threads\{pid="(\d+)"\}', body, re.M))
            pids = found - {str(server.pid)}  # a preloading master publishes its own too
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    assert 2 == len(pids), (tmp_path / "gunicorn.log").read_text()[-2000:]


UVICORN_APP = """
import time

import obskit
from obskit.metrics.use.event_loop import ensure_monitor

obskit.init(service_name="use-loop", tracing=False)
metrics = obskit.metrics_asgi_app()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    ensure_monitor()  # what obskit's ASGI middleware does on every request
    if scope["path"] == "/metrics":
        await metrics(scope, receive, send)
        return
    if scope["path"] == "/block":
        time.sleep(0.2)  # a blocking call on the event loop
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def slow_lags(body: str) -> float:
    """Lag observations above 100 ms in a scrape."""
    total = re.search(r"^obskit_event_loop_lag_seconds_count (\S+)", body, re.M)
    fast = re.search(r'^obskit_event_loop_lag_seconds_bucket\{le="0.1"\} (\S+)', body, re.M)
    return float(total.group(1)) - float(fast.group(1)) if total and fast else 0.0


@pytest.mark.slow
def test_uvicorn_loop_lag_from_a_blocking_handler(tmp_path: Path) -> None:
    """In a real uvicorn, a handler blocking 200 ms shows in the lag histogram within a second."""
    pytest.importorskip("uvicorn")
    (tmp_path / "loop_app.py").write_text(textwrap.dedent(UVICORN_APP))
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    server = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "--port", str(port), "--no-access-log", "loop_app:app"],
        cwd=tmp_path,
        env=subprocess_env(
            PYTHONPATH=os.pathsep.join([str(tmp_path), subprocess_env()["PYTHONPATH"]])
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        before = slow_lags(body)
        with urllib.request.urlopen(base + "/block", timeout=5) as resp:
            resp.read()
        blocked_at = time.monotonic()
        after = before
        while after == before and time.monotonic() - blocked_at < 1.0:
            with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
                body = resp.read().decode()
            after = slow_lags(body)
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    assert 1.0 == after - before, (tmp_path / "uvicorn.log").read_text()[-2000:]
    assert re.search(r"^obskit_event_loop_busy_seconds_total \S+", body, re.M)
