"""Several workers, one truth: any worker's scrape shows every worker's totals (real servers)."""

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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import subprocess_env

from obskit.metrics.exposition import Combined

pytestmark = pytest.mark.slow

WSGI_APP = textwrap.dedent(
    """
    import os
    import obskit

    obskit.init(
        service_name="mp-test",
        tracing=False,
        access_log=False,
        collectors="none",
        metrics_port=int(os.environ.get("TEST_METRICS_PORT", "0")) or None,
    )
    scrape = obskit.metrics_wsgi_app()

    def work(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]

    instrumented = obskit.WSGIMiddleware(work)

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/metrics":
            def with_pid(status, headers, exc_info=None):
                return start_response(status, [*headers, ("X-Worker", str(os.getpid()))])
            return scrape(environ, with_pid)
        return instrumented(environ, start_response)
    """
)

ASGI_APP = textwrap.dedent(
    """
    import os
    import obskit

    obskit.init(service_name="mp-test", tracing=False, access_log=False, collectors="none")
    scrape = obskit.metrics_asgi_app()

    async def work(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})

    instrumented = obskit.ASGIMiddleware(work)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/metrics":
            async def with_pid(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [
                        *message["headers"], (b"x-worker", str(os.getpid()).encode())]}
                await send(message)
            return await scrape(scope, receive, with_pid)
        if scope["type"] == "lifespan":
            return await scrape(scope, receive, send)
        return await instrumented(scope, receive, send)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.returncode}")
        try:
            _get(port, "/metrics")
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


@contextmanager
def _server(cmd: list[str], tmp_path: Path, source: str) -> Iterator[tuple[int, int]]:
    (tmp_path / "mpapp.py").write_text(source)
    port = _free_port()
    env = subprocess_env(TMPDIR=str(tmp_path), TEST_METRICS_PORT=str(_free_port()))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.Popen(
        [sys.executable, "-m", *[part.format(port=port) for part in cmd]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_up(port, proc)
        yield port, int(env["TEST_METRICS_PORT"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _drive(port: int, requests: int) -> set[str]:
    """Send ``requests`` GETs from 6 client threads; the pids of the workers that answered."""

    def one(_: int) -> str:
        status, _, body = _get(port, "/work")
        assert 200 == status
        return body.decode()

    with ThreadPoolExecutor(6) as pool:
        return set(pool.map(one, range(requests)))


def _scraped_count(port: int) -> tuple[float, str]:
    status, headers, body = _get(port, "/metrics")
    assert 200 == status
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "http_server_request_duration_seconds":
            total += sum(s.value for s in family.samples if s.name.endswith("_count"))
    return total, headers.get("x-worker", "")


def _settle(port: int, expected: float) -> None:
    """Wait (bounded) until the last requests are recorded.

    The middleware records a request after its last body byte is sent, so a client can read its
    response a moment before the worker has counted it.
    """
    deadline = time.monotonic() + 5
    while _scraped_count(port)[0] < expected and time.monotonic() < deadline:
        time.sleep(0.05)


def _scrapes_from_several_workers(port: int, want_workers: int) -> tuple[list[float], set[str]]:
    counts: list[float] = []
    workers: set[str] = set()
    deadline = time.monotonic() + 10
    while len(workers) < want_workers and time.monotonic() < deadline and len(counts) < 200:
        count, worker = _scraped_count(port)
        counts.append(count)
        workers.add(worker)
    return counts, workers


def test_gunicorn_three_workers_scrape_shows_all_requests(tmp_path: Path) -> None:
    """3,000 requests over 3 gunicorn workers: every worker's scrape counts exactly 3,000."""
    cmd = ["gunicorn", "-w", "3", "-b", "127.0.0.1:{port}", "--graceful-timeout", "2", "mpapp:app"]
    with _server(cmd, tmp_path, WSGI_APP) as (port, metrics_port):
        served_by = _drive(port, 3000)
        assert 3 == len(served_by)
        _settle(port, 3000)
        counts, workers = _scrapes_from_several_workers(port, 3)
        assert len(workers) >= 2
        assert {3000.0} == set(counts)
        # The standalone metrics port (metrics_port) is shared by the workers: same totals.
        assert {3000.0} == {_scraped_count(metrics_port)[0] for _ in range(10)}

        # A worker killed outright is replaced; its requests stay in the totals.
        os.kill(int(sorted(served_by)[0]), signal.SIGKILL)
        time.sleep(1.0)
        _drive(port, 30)
        _settle(port, 3030)
        counts, _ = _scrapes_from_several_workers(port, 3)
        assert {3030.0} == set(counts)
        killed = sorted(served_by)[0]
        (directory,) = (
            p for p in (tmp_path / f"obskit-metrics-{os.getuid()}").iterdir() if p.is_dir()
        )
        assert [] == list(directory.glob(f"*_{killed}.db"))
        assert (directory / "histogram_archive.db").exists()


def test_uvicorn_workers_scrape_shows_all_requests(tmp_path: Path) -> None:
    """600 requests over 2 uvicorn --workers processes: every scrape counts exactly 600."""
    cmd = ["uvicorn", "--workers", "2", "--port", "{port}", "--no-access-log", "mpapp:app"]
    with _server(cmd, tmp_path, ASGI_APP) as (port, _):
        served_by = _drive(port, 600)
        assert 2 == len(served_by)
        _settle(port, 600)
        counts, workers = _scrapes_from_several_workers(port, 2)
        assert {600.0} == set(counts)
        assert 2 == len(workers)


def test_plain_process_is_not_a_worker() -> None:
    """A process whose parent is no pre-fork server stays in single-process mode."""
    from obskit.metrics import multiprocess

    assert multiprocess.detect_master() is None


def test_directories_of_gone_masters_are_removed(tmp_path: Path) -> None:
    """At start, directories keyed by a master that no longer runs are removed; live ones stay."""
    from obskit.metrics import multiprocess

    base = tmp_path / "base"
    base.mkdir()
    live = base / f"{os.getpid()}-{multiprocess._start_time(os.getpid())}"
    recycled = base / f"{os.getpid()}-1"  # same pid, other start time: a recycled pid
    gone = base / "4194300-12345"
    for path in (live, recycled, gone):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"")
    multiprocess._remove_stale(str(base))
    assert [live.name] == sorted(p.name for p in base.iterdir() if p.is_dir())


def test_dead_workers_live_gauges_dropped(tmp_path: Path) -> None:
    """A scrape removes the live-gauge file of a dead worker and archives its counters."""
    from obskit.metrics import multiprocess

    previous = os.environ.get(multiprocess.ENV)
    mp = multiprocess.Multiprocess(str(tmp_path), managed=False)
    try:
        dead = tmp_path / "gauge_livesum_4194301.db"
        counter = tmp_path / "counter_4194301.db"
        for path in (dead, counter):
            MmapedDict(str(path)).close()  # valid, empty prometheus-client files
        list(mp.collector().collect())
        assert not dead.exists()
        assert not counter.exists()
        assert (tmp_path / "counter_archive.db").exists()
    finally:
        mp.close()
    assert previous == os.environ.get(multiprocess.ENV)


def test_gunicorn_preload_master_shares_with_forked_workers(tmp_path: Path) -> None:
    """With --preload (init() in the master, workers forked) scrapes still show every worker."""
    cmd = [
        "gunicorn",
        "-w",
        "3",
        "--preload",
        "-b",
        "127.0.0.1:{port}",
        "--graceful-timeout",
        "2",
        "mpapp:app",
    ]
    with _server(cmd, tmp_path, WSGI_APP) as (port, _):
        served_by = _drive(port, 300)
        assert len(served_by) >= 2
        _settle(port, 300)
        counts, workers = _scrapes_from_several_workers(port, 2)
        assert {300.0} == set(counts)
        assert 2 <= len(workers)


def test_dead_workers_files_fold_into_one_archive(tmp_path: Path) -> None:
    """Counters and histograms of dead workers fold into archives; the totals do not change."""
    from prometheus_client import values

    from obskit.metrics import multiprocess
    from obskit.metrics._store import Store

    mp = multiprocess.Multiprocess(str(tmp_path), managed=False)
    try:
        for fake_pid in (4194301, 4194302):
            store = Store(values=values.MultiProcessValue(lambda pid=fake_pid: pid))
            store.counter("jobs", "Jobs.", ["queue"]).labels("a").inc(2)
            store.histogram("lat_seconds", "Latency.", ["route"]).labels("/x").observe(0.2)
        values.close_all_multiprocess_files()
        assert 4 <= len(list(tmp_path.glob("*_41943*.db")))
        text = generate_latest(Combined(mp.collector())).decode()
        assert [] == sorted(p.name for p in tmp_path.glob("*_41943*.db"))
        assert {"counter_archive.db", "histogram_archive.db"} <= {
            p.name for p in tmp_path.iterdir()
        }
        assert 'jobs_total{queue="a"} 4.0' in text
        assert 'lat_seconds_count{route="/x"} 2.0' in text
        mp._last_marked = 0.0
        again = generate_latest(Combined(mp.collector())).decode()
        assert text == again
    finally:
        mp.close()


def test_function_families_aggregate_across_processes(tmp_path: Path) -> None:
    """In multi-process mode the decorator's calls, durations and in-flight gauge add up."""
    from prometheus_client import values

    from obskit.metrics import multiprocess
    from obskit.metrics._binding import FUNCTION_BUCKETS
    from obskit.metrics._store import Store

    mp = multiprocess.Multiprocess(str(tmp_path), managed=False)
    try:
        for fake_pid in (os.getpid(), 1):  # pid 1 is alive: its files are read, not folded
            store = Store(values=values.MultiProcessValue(lambda pid=fake_pid: pid))
            duration = store.histogram(
                "fn_duration_seconds", "D.", ["function"], FUNCTION_BUCKETS, count_name="fn_calls"
            )
            duration.labels("job").observe(0.003)
            active = store.gauge("fn_active", "A.", ["function"]).labels("job")
            active.enter()
        values.close_all_multiprocess_files()
        text = generate_latest(Combined(mp.collector())).decode()
    finally:
        mp.close()
    assert 'fn_calls_total{function="job"} 2.0' in text
    assert 'fn_duration_seconds_bucket{function="job",le="0.0025"} 0.0' in text
    assert 'fn_duration_seconds_bucket{function="job",le="0.005"} 2.0' in text
    assert 'fn_active{function="job"} 2.0' in text
