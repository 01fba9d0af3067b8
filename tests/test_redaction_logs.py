"""Log redaction in every shape of issue 13 item 7, on every path a line can take."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests.structures
import starlette.datastructures

import obskit
import obskit.testing
from obskit.logs import REDACTED
from web_support import http_scope

S = "Zx9-s3cr3t-Qq7"  # the secret every shape carries


def _raise(message: str) -> None:
    raise ValueError(message)


# (name, log call): each puts S in one of the shapes a service really logs.
SHAPES: list[tuple[str, Callable[[Any], None]]] = [
    ("asgi raw headers", lambda log: log.info("req", headers=[(b"authorization", S.encode())])),
    (
        "starlette Headers",
        lambda log: log.info(
            "req", headers=starlette.datastructures.Headers({"authorization": f"Bearer {S}"})
        ),
    ),
    ("httpx Headers", lambda log: log.info("req", headers=httpx.Headers({"X-Api-Key": S}))),
    (
        "requests CaseInsensitiveDict",
        lambda log: log.info(
            "req", headers=requests.structures.CaseInsensitiveDict({"Cookie": f"sid={S}"})
        ),
    ),
    ("cookie pair list", lambda log: log.info("req", headers=[("Cookie", f"sid={S}; a=b")])),
    ("url credentials", lambda log: log.info("call", url=f"https://bob:{S}@api.example.com/x")),
    ("database dsn", lambda log: log.info("db", dsn=f"postgresql://app:{S}@db:5432/orders")),
    ("query token", lambda log: log.info("call", url=f"https://h/x?page=2&access_token={S}")),
    ("free text", lambda log: log.info(f"login failed for bob password={S} from 10.0.0.1")),
    ("aws key", lambda log: log.info("cfg", aws_access_key_id=S, aws_secret_access_key=S)),
    ("bound context", lambda log: log.bind(api_token=S).info("bound")),
    ("nested", lambda log: log.info("cfg", settings={"db": {"password": S}, "port": 5432})),
]


def _exception(log: Any) -> None:
    try:
        _raise(f"connect failed: password={S}")
    except ValueError:
        log.exception("failed")


SHAPES.append(("exception message", _exception))


def _lines(capture: obskit.testing.Capture) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capture.output_lines()]


@pytest.mark.parametrize(("name", "emit"), SHAPES, ids=[name for name, _ in SHAPES])
def test_structlog_lines_carry_no_secret(name: str, emit: Callable[[Any], None]) -> None:
    """Through obskit's logger, no shape of secret reaches the log stream."""
    with obskit.testing.isolated() as capture:
        emit(obskit.get_logger("app"))
    text = capture.output.getvalue().decode()
    assert text
    assert S not in text
    assert REDACTED in text


@pytest.mark.parametrize(("name", "emit"), SHAPES, ids=[name for name, _ in SHAPES])
def test_console_lines_carry_no_secret(name: str, emit: Callable[[Any], None]) -> None:
    """The console renderer (its traceback included) prints no shape of secret either."""
    with obskit.testing.isolated(log_format="console") as capture:
        emit(obskit.get_logger("app"))
    text = capture.output.getvalue().decode()
    assert text
    assert S not in text


class TestStdlib:
    def test_percent_arguments(self) -> None:
        """A secret passed as a %s argument (a DSN, key=value text) is redacted in the message."""
        with obskit.testing.isolated() as capture:
            logging.getLogger("db").info("connecting to %s", f"postgresql://app:{S}@db/orders")
            logging.getLogger("auth").warning("rejected %s", f"token={S}")
        for line in _lines(capture):
            assert S not in line["event"]
            assert REDACTED in line["event"]

    def test_named_arguments_under_secret_names(self) -> None:
        """%(password)s is redacted by its name, though the formatted text would not show it."""
        with obskit.testing.isolated() as capture:
            logging.getLogger("auth").info(
                "user %(user)s logged in with %(password)s", {"user": "bob", "password": S}
            )
        [line] = _lines(capture)
        assert f"user bob logged in with {REDACTED}" == line["event"]

    def test_extra_fields_and_traceback(self) -> None:
        """extra= fields are redacted by key, an exception's message and notes as text."""
        with obskit.testing.isolated() as capture:
            try:
                _raise(f"Authorization: Bearer {S}")
            except ValueError:
                logging.getLogger("app").exception("boom", extra={"client_secret": S})
        text = capture.output.getvalue().decode()
        assert S not in text
        [line] = _lines(capture)
        assert REDACTED == line["client_secret"]

    def test_buffered_lines_are_redacted_before_they_are_held(self) -> None:
        """Debug lines held for a trace, written once the trace is kept, carry no secret."""
        with obskit.testing.isolated(log_level="info", log_buffer_level="debug") as capture:
            tracer = obskit.get_tracer()
            with tracer.start_as_current_span("work") as span:
                obskit.get_logger().debug("held", password=S)
                logging.getLogger("lib").debug("held too: token=%s", S)
                span.set_status(obskit_error_status())
            obskit.testing.flush(5)
        lines = _lines(capture)
        assert {"held", f"held too: token={REDACTED}"} <= {line["event"] for line in lines}
        assert S not in capture.output.getvalue().decode()


def obskit_error_status() -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def _server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_httpx_own_request_line() -> None:
    """httpx's "HTTP Request: GET http://user:pass@...?access_token=..." line is redacted."""
    with _server() as port, obskit.testing.isolated() as capture:
        logging.getLogger("httpx").setLevel(logging.INFO)
        try:
            with httpx.Client(timeout=5) as client:
                response = client.get(f"http://bob:{S}@127.0.0.1:{port}/x?access_token={S}")
        finally:
            logging.getLogger("httpx").setLevel(logging.NOTSET)
        assert 200 == response.status_code
    [line] = [line for line in _lines(capture) if line["logger"] == "httpx"]
    assert line["event"].startswith("HTTP Request: GET http://bob:[REDACTED]@127.0.0.1:")
    assert f"access_token={REDACTED}" in line["event"]
    assert S not in capture.output.getvalue().decode()


def test_access_line_path_with_matrix_and_query_tokens() -> None:
    """The access line's path keeps its shape; ;access_token= and ?access_token= are redacted."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = http_scope(f"/items;access_token={S}")
    scope["query_string"] = f"page=2&access_token={S}".encode()
    with obskit.testing.isolated() as capture:
        asyncio.run(obskit.ASGIMiddleware(app)(scope, receive, send))
    [line] = [line for line in _lines(capture) if line["logger"] == "obskit.access"]
    assert f"/items;access_token={REDACTED}?page=2&access_token={REDACTED}" == line["path"]
    assert S not in capture.output.getvalue().decode()


def test_false_positives_are_kept() -> None:
    """Counts, tokenizers and routes that mention secrets keep their values."""
    with obskit.testing.isolated() as capture:
        obskit.get_logger().info(
            "tokens.used",
            token_count=3,
            max_tokens=512,
            tokenizer="cl100k_base",
            route="/passwords/reset",
            password_length=12,
            has_password=True,
        )
    [line] = _lines(capture)
    assert {
        "token_count": 3,
        "max_tokens": 512,
        "tokenizer": "cl100k_base",
        "route": "/passwords/reset",
        "password_length": 12,
        "has_password": True,
    }.items() <= line.items()


def test_redactions_are_counted() -> None:
    """Each secret replaced in a log line counts in obskit_redacted_values_total{signal="log"}."""
    with obskit.testing.isolated() as capture:
        obskit.get_logger().info("x", password=S, note=f"token={S}")
        assert 2 == capture.sample("obskit_redacted_values_total", {"signal": "log"})
