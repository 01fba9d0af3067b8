"""Bounds on what one request can write (issue 13 item 11): long values cut, marked, counted."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

import obskit
import obskit.testing
from obskit import ConfigError
from web_support import http_scope

LONG_PATH = "/" + "a" * (64 * 1024)


def _request(path: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = http_scope(path)
    scope["query_string"] = b"q=" + b"b" * 10_000
    asyncio.run(obskit.ASGIMiddleware(app)(scope, receive, send))


def test_a_64_kib_path_is_cut_in_the_access_line_and_the_span(tmp_path: Path) -> None:
    """The access line and url.path stay within max_value_length, marked, and are counted."""
    with (
        obskit.testing.isolated(trace_sink=str(tmp_path / "t.jsonl"), sampling="all") as capture,
        obskit.testing.capture_spans() as spans,
    ):
        _request(LONG_PATH)
        assert obskit.testing.flush(10)
        raw = [line for line in capture.output_lines() if '"obskit.access"' in line]
        logged = capture.sample("obskit_truncated_values_total", {"signal": "log"})
        traced = capture.sample("obskit_truncated_values_total", {"signal": "span"})
    [line] = raw
    assert 6 * 1024 > len(line)  # was 66 KB
    path = json.loads(line)["path"]
    assert 4096 >= len(path)
    assert path.startswith("/aaaa")
    assert "...[truncated " in path
    [span] = spans
    attributes = dict(span.attributes or {})
    for name in ("url.path", "url.query"):
        assert 4096 >= len(attributes[name])
        assert "...[truncated " in attributes[name]
    assert 4096 >= len(span.name)
    assert logged is not None
    assert 1 <= logged
    assert traced is not None
    assert 2 <= traced
    text = (tmp_path / "t.jsonl").read_text()
    assert 12 * 1024 > len(text)


def test_log_fields_and_event_text_are_cut() -> None:
    """A long field at any depth, and a long message, are cut to max_value_length."""
    with obskit.testing.isolated(max_value_length=1000) as capture:
        obskit.get_logger().info("x" * 50_000, body="y" * 50_000, nested={"list": ["z" * 50_000]})
        logging.getLogger("lib").info("%s", "w" * 50_000)
        counted = capture.sample("obskit_truncated_values_total", {"signal": "log"})
    first, second = (json.loads(line) for line in capture.output_lines())
    for value in (first["event"], first["body"], first["nested"]["list"][0], second["event"]):
        assert 1000 >= len(value)
        assert "...[truncated " in value
    assert 4 == counted


def test_bounds_hold_with_redaction_off() -> None:
    """redact=False keeps secrets visible but still bounds every value."""
    with obskit.testing.isolated(redact=False, max_value_length=300) as capture:
        obskit.get_logger().info("x", password="visible", body="y" * 5000)
    [line] = (json.loads(line) for line in capture.output_lines())
    assert "visible" == line["password"]
    assert 300 >= len(line["body"])


def test_a_long_exception_keeps_its_end() -> None:
    """A stack trace cut to the bound keeps the end, where the exception itself is named."""

    def fail() -> None:
        try:
            raise KeyError("k" * 5000)
        except KeyError as cause:
            raise LookupError("the end of the trace") from cause

    with obskit.testing.isolated(max_value_length=2000, log_format="console") as capture:
        try:
            fail()
        except LookupError:
            obskit.get_logger().exception("failed")
    text = capture.output.getvalue().decode()
    assert "...[truncated " in text
    assert "LookupError: the end of the trace" in text
    assert 3000 > len(text)


@pytest.mark.parametrize("value", [10, "255", 2**21, "lots"])
def test_max_value_length_is_validated(value: object) -> None:
    """A bound below 256 characters, above 1 MiB or not a number fails init() naming it."""
    with pytest.raises(ConfigError, match="max_value_length"):
        obskit.init(max_value_length=value)
