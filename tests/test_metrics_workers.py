"""No family flips between workers: scrapes of real multi-worker servers never go backwards."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import subprocess_env
from obskit.metrics import catalogue

pytestmark = pytest.mark.slow

# Every kind of family obskit has: RED (middleware, @red), tail sampling with kept error traces,
# every USE collector, internal errors; prometheus-client's default collectors on the registry.
COMMON = """
import os
import obskit

obskit.init(service_name="flip", trace_sink=os.environ["TEST_SPANS"], access_log=False)


@obskit.red
def work(fail):
    if fail:
        raise ValueError("failed on purpose")
    return b"ok"


def answer(path):
    try:
        return 200, work(path == "/fail")
    except ValueError:
        return 500, b"failed"
"""

ASGI_APP = (
    COMMON
    + """
scrape = obskit.metrics_asgi_app()


async def inner(scope, receive, send):
    status, body = answer(scope["path"])
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})

instrumented = obskit.ASGIMiddleware(inner)


async def app(scope, receive, send):
    if scope["type"] == "lifespan" or scope["path"] == "/metrics":
        async def with_pid(message):
            if message["type"] == "http.response.start":
                extra = [(b"x-worker", str(os.getpid()).encode())]
                message = {**message, "headers": [*message["headers"], *extra]}
            await send(message)
        return await scrape(scope, receive, with_pid)
    return await instrumented(scope, receive, send)
"""
)

WSGI_APP = (
    COMMON
    + """
scrape = obskit.metrics_wsgi_app()


def inner(environ, start_response):
    status, body = answer(environ["PATH_INFO"])
    start_response(f"{status} X", [("Content-Type", "text/plain")])
    return [body]

instrumented = obskit.WSGIMiddleware(inner)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        def with_pid(status, headers, exc_info=None):
            return start_response(status, [*headers, ("X-Worker", str(os.getpid()))])
        return scrape(environ, with_pid)
    return instrumented(environ, start_response)
"""
)

Series = tuple[str, tuple[tuple[str, str], ...]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str, str]:
    """One request on a fresh connection (so the kernel may hand it to any worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("x-worker") or "", resp.read().decode()
    finally:
        conn.close()


@contextmanager
def _server(argv: list[str], tmp_path: Path, source: str) -> Iterator[int]:
    (tmp_path / "flipapp.py").write_text(textwrap.dedent(source))
    port = _free_port()
    env = subprocess_env(TMPDIR=str(tmp_path), TEST_SPANS=str(tmp_path / "spans.jsonl"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", *[part.format(port=port) for part in argv]],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                _get(port, "/metrics")
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _parse(text: str) -> tuple[dict[Series, float], dict[str, str]]:
    """Every sample of one scrape by (name, labels), and the type of each sample's family."""
    values: dict[Series, float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            types[sample.name] = family.type
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values, types


def _cumulative(name: str, family_type: str) -> bool:
    """Whether a sample of this family type can only grow (counters, histogram parts)."""
    if family_type == "counter":
        return name.endswith("_total")
    return family_type in ("histogram", "summary") and not name.endswith("_created")


def _scrape_repeatedly(port: int, scrapes: int) -> tuple[list[str], set[str]]:
    """At least ``scrapes`` scrapes (more until two workers answered, at most 3x) with traffic,
    some of it failing, in between; the bodies and the workers that answered."""
    bodies: list[str] = []
    workers: set[str] = set()
    for round_ in range(3 * scrapes):
        if round_ >= scrapes and len(workers) >= 2:
            break
        for index in range(12):
            status, _, _ = _get(port, "/fail" if index == round_ % 12 else "/work")
            assert status in (200, 500)
        status, worker, body = _get(port, "/metrics")
        assert 200 == status
        bodies.append(body)
        workers.add(worker)
    return bodies, workers


def _flips(bodies: list[str]) -> list[str]:
    """What Prometheus would misread: a cumulative series going back, or a gauge without owner."""
    problems: list[str] = []
    seen: dict[Series, tuple[int, float]] = {}
    for index, body in enumerate(bodies):
        values, types = _parse(body)
        for series, value in values.items():
            name, labels = series
            family_type = types[name]
            if _cumulative(name, family_type):
                before = seen.get(series)
                if before is not None and value < before[1]:
                    problems.append(f"scrape {index}: {name}{dict(labels)} {before[1]} -> {value}")
                seen[series] = (index, value)
            elif family_type == "gauge":
                problems += _gauge_owner(name, dict(labels))
        for series, (last, _) in seen.items():
            if last < index and series not in values:
                problems.append(f"scrape {index}: {series[0]}{dict(series[1])} disappeared")
    return sorted(set(problems))


def _gauge_owner(name: str, labels: dict[str, str]) -> list[str]:
    """A gauge is summed (no pid), per worker (pid), or the same in every worker (declared)."""
    if name == "python_info":  # prometheus-client's platform collector: a constant
        return []
    try:
        declared = catalogue.family(name)
    except KeyError:
        return [f"{name}: a gauge obskit does not declare"]
    if declared.workers == "pid" and "pid" not in labels:
        return [f"{name}: per-worker gauge without a pid label"]
    if declared.workers != "pid" and "pid" in labels:
        return [f"{name}: {declared.workers} gauge with a pid label"]
    return []


def _assert_never_flips(port: int, workers: int) -> None:
    bodies, seen = _scrape_repeatedly(port, 16)
    assert 2 <= len(seen) <= workers, seen
    last = bodies[-1]
    for family in ("obskit_tail_decisions_total", "cpython_gc_collections_total"):
        assert family in last
    assert 'process_threads{pid="' in last
    assert 'url_scheme="http"' in last
    flips = _flips(bodies)
    assert [] == flips, "\n".join(flips)


def test_uvicorn_two_workers_never_flip(tmp_path: Path) -> None:
    """16 scrapes of uvicorn --workers 2 between bursts of traffic: no series ever goes back."""
    argv = ["uvicorn", "--workers", "2", "--port", "{port}", "--no-access-log", "flipapp:app"]
    with _server(argv, tmp_path, ASGI_APP) as port:
        _assert_never_flips(port, 2)


def test_gunicorn_three_workers_never_flip(tmp_path: Path) -> None:
    """16 scrapes of gunicorn -w 3 between bursts of traffic: no series ever goes back."""
    argv = ["gunicorn", "-w", "3", "-b", "127.0.0.1:{port}", "--graceful-timeout", "2"]
    with _server([*argv, "flipapp:app"], tmp_path, WSGI_APP) as port:
        _assert_never_flips(port, 3)
