"""``obskit canary serve`` does not fall over: slow, large, malformed and too many requests are
answered or cut off in bounded time, threads do not pile up, SIGTERM stops it cleanly.

Real sockets on loopback against a real server; the Prometheus it asks is a stand-in that
answers an empty matrix (the verdict is then INCONCLUSIVE, answered 200).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import subprocess_env
from obskit.canary.serve import CanaryServer, Defaults

JUDGE = "/v1/judge?" + urllib.parse.urlencode({"baseline": '{v="1"}', "canary": '{v="2"}'})


class _EmptyPrometheus(BaseHTTPRequestHandler):
    """Answers every range query with no series, the first after ``delay`` seconds."""

    delay = 0.0
    asked: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if not self.asked.is_set():  # only the first query is slow
            self.asked.set()
            time.sleep(self.delay)
        body = json.dumps(
            {"status": "success", "data": {"resultType": "matrix", "result": []}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def prometheus(delay: float = 0.0) -> Iterator[tuple[str, threading.Event]]:
    """A stand-in Prometheus on loopback; the event is set when it is first asked."""
    asked = threading.Event()
    handler = type("Handler", (_EmptyPrometheus,), {"delay": delay, "asked": asked})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[CanaryServer]:
    """A canary server with a 1 s request budget and at most 3 connections."""
    with prometheus() as (url, _):
        served = CanaryServer(
            Defaults(prometheus=url, since="10m"), 0, max_connections=3, request_seconds=1.0
        ).start()
        try:
            yield served
        finally:
            served.close(grace=5)


def _connect(server: CanaryServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (at most 10 s)."""
    sock.settimeout(10)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0


def _get(server: CanaryServer, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.url}{path}", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


class TestSlowClients:
    def test_headers_dripping_in_are_cut_off_at_the_request_budget(
        self, server: CanaryServer
    ) -> None:
        """A byte every 0.2 s never completes a request: the connection ends within ~1 s."""
        began = time.monotonic()
        with _connect(server) as sock:
            with contextlib.suppress(OSError):
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    sock.send(bytes([byte]))
                    time.sleep(0.2)
            _answer(sock)
        assert time.monotonic() - began < 8
        assert 200 == _get(server, "/healthz")[0]

    def test_an_idle_connection_is_closed(self, server: CanaryServer) -> None:
        """A connection that sends nothing is closed after the budget, not held for ever."""
        began = time.monotonic()
        with _connect(server) as sock:
            assert b"" == _answer(sock)
        assert time.monotonic() - began < 8

    def test_a_body_shorter_than_declared_ends_in_bounded_time(self, server: CanaryServer) -> None:
        """Content-Length 100 but 2 bytes sent: the connection is closed at the budget, and
        nothing half-read is judged."""
        began = time.monotonic()
        with _connect(server) as sock:
            sock.sendall(b"POST /v1/judge HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
            raw = _answer(sock)
        assert time.monotonic() - began < 8
        assert b"" == raw or 400 == _status(raw)
        assert 200 == _get(server, "/healthz")[0]


class TestBoundedInput:
    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            (b"Content-Length: 70000\r\n", 413),
            (b"Transfer-Encoding: chunked\r\n", 411),
            (b"Content-Length: lots\r\n", 400),
        ],
    )
    def test_bodies_are_bounded_and_declared(
        self, server: CanaryServer, headers: bytes, status: int
    ) -> None:
        """Over 64 KiB, chunked, or a length that is not a number: refused unread, closed."""
        with _connect(server) as sock:
            sock.sendall(b"POST /v1/judge HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            raw = _answer(sock)
        assert status == _status(raw)
        assert b"Connection: close" in raw
        assert "error" in json.loads(raw.split(b"\r\n\r\n", 1)[1])

    def test_malformed_requests_get_a_json_error(self, server: CanaryServer) -> None:
        """Garbage instead of HTTP, or a header line over 64 KiB: a JSON error, then the
        connection is closed (not a hang, not an HTML page)."""
        with _connect(server) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw = _answer(sock)  # HTTP/0.9 style: the body alone
        assert json.loads(raw)["error"].startswith("400 ")
        with _connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
            raw = _answer(sock)
        assert 431 == _status(raw)
        assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"].startswith("431 ")

    def test_a_json_parameter_that_is_an_object_is_a_400(self, server: CanaryServer) -> None:
        """/v1/judge takes strings (or numbers); an object is refused, not str()-ed."""
        body = json.dumps({"baseline": {"v": "1"}, "canary": '{v="2"}'}).encode()
        request = urllib.request.Request(
            f"{server.url}/v1/judge", data=body, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        with caught.value:
            assert 400 == caught.value.code

    def test_flagger_names_cannot_inject_into_a_selector(self, server: CanaryServer) -> None:
        """A namespace that is not a Kubernetes name is a 400 before any query."""
        payload = {
            "name": "podinfo",
            "namespace": 'x",job=~".+',
            "metadata": {"baseline": '{namespace="{namespace}"}', "canary": '{app="{name}"}'},
        }
        request = urllib.request.Request(
            f"{server.url}/flagger/rollout",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        with caught.value:
            assert 400 == caught.value.code
            assert "Kubernetes name" in json.loads(caught.value.read())["error"]


class TestConnections:
    def test_connections_beyond_the_limit_get_503(self, server: CanaryServer) -> None:
        """Three idle connections hold the three slots; the fourth is answered 503 at once."""
        held = [_connect(server) for _ in range(3)]
        try:
            time.sleep(0.2)  # let the server accept them
            with _connect(server) as sock:
                raw = _answer(sock)
            assert 503 == _status(raw)
        finally:
            for sock in held:
                sock.close()

    def test_threads_do_not_pile_up(self, server: CanaryServer) -> None:
        """After 30 judged requests the server holds no more threads than before them."""
        before = threading.active_count()
        for _ in range(30):
            assert 200 == _get(server, JUDGE)[0]
        deadline = time.monotonic() + 10
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert before >= threading.active_count()


@pytest.mark.timeout(60)
def test_sigterm_answers_the_request_in_flight_then_exits_zero() -> None:
    """SIGTERM while a judge is waiting on Prometheus: that request still gets its 200, the
    port is released and the process exits 0."""
    with prometheus(delay=1.5) as (url, asked):
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from obskit.cli import main; raise SystemExit(main())",
                "canary",
                "serve",
                "--prometheus",
                url,
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
            text=True,
        )
        try:
            assert process.stdout is not None
            served = json.loads(process.stdout.readline())["serving"]
            answers: list[int] = []

            def ask() -> None:
                with urllib.request.urlopen(f"{served}{JUDGE}", timeout=30) as response:
                    answers.append(response.status)

            asker = threading.Thread(target=ask)
            asker.start()
            assert asked.wait(20)
            process.send_signal(signal.SIGTERM)
            assert 0 == process.wait(timeout=30)
            asker.join(timeout=30)
            assert [200] == answers
            port = int(served.rsplit(":", 1)[1])
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 2):
                pass
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
