"""Hostile values: cycles, shared references, keys from requests, objects that fail to be read.

Whatever a service logs or puts on a span, cleaning it ends quickly, keeps the line or span, and
bounds what it writes; what is cut is counted.
"""

from __future__ import annotations

import asyncio
import collections.abc
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

import obskit
import obskit.testing
from obskit.logs import REDACTED
from obskit.logs.redaction import MAX_ITEMS, MAX_KEY_LENGTH, Redactor, counts
from web_support import http_scope

S = "Kq7-s3cr3t-Wz4"


def _line(capture: obskit.testing.Capture, event: str) -> Any:
    [line] = [line for line in map(json.loads, capture.output_lines()) if event == line["event"]]
    return line


class TestShapesThatExplode:
    @pytest.mark.timeout(30)
    def test_a_cycle_with_fan_out_ends_where_it_closes(self) -> None:
        """A dict holding itself under four keys (4**16 paths to a depth of 16) is cleaned at
        once: each reference back to an enclosing container becomes a marker."""
        value: dict[str, Any] = {"password": S}
        for key in "abcd":
            value[key] = value
        before = counts().get(("truncated", "log"), 0)
        cleaned = Redactor().clean_value(value)
        assert REDACTED == cleaned["password"]
        assert {"...[truncated: cycle]..."} == {cleaned[key] for key in "abcd"}
        assert 4 + before == counts()[("truncated", "log")]

    @pytest.mark.timeout(30)
    def test_shared_references_are_walked_within_a_budget(self) -> None:
        """Five levels of 30 references to one list (24 million leaves) cost a bounded walk."""
        value: Any = [f"token={S}"]
        for _ in range(5):
            value = [value] * 30
        cleaned = Redactor().clean_value(value)
        text = json.dumps(cleaned)
        assert S not in text
        assert "...[truncated: too many items]..." in text
        assert 1_000_000 > len(text)

    @pytest.mark.timeout(60)
    def test_a_log_line_with_a_cycle_is_written(self) -> None:
        """A cyclic structure logged goes out as one bounded line (JSON cannot hold a cycle)."""
        value: list[Any] = [{"api_key": S}]
        value.append(value)
        with obskit.testing.isolated() as capture:
            obskit.get_logger("t").info("cyclic", value=value)
            line = _line(capture, "cyclic")
        assert [{"api_key": REDACTED}, "...[truncated: cycle]..."] == line["value"]


class TestKeys:
    def test_a_key_from_a_request_is_cut(self) -> None:
        """A 64 KiB key (a logged dict of query parameters) keeps MAX_KEY_LENGTH characters."""
        cleaned = Redactor().clean_mapping({"k" * 65_536: "v", "page": 2})
        [long_key] = [key for key in cleaned if key != "page"]
        assert MAX_KEY_LENGTH >= len(long_key)
        assert "...[truncated " in long_key
        assert 2 == cleaned["page"]

    def test_a_secret_inside_a_key_is_redacted(self) -> None:
        """Keys are text too: a URL with credentials or a key=value used as a key is cleaned."""
        cleaned = Redactor().clean_mapping({f"https://bob:{S}@db/x": 3, "ok": 1})
        assert {f"https://bob:{REDACTED}@db/x": 3, "ok": 1} == cleaned

    def test_keys_json_cannot_hold_become_text(self) -> None:
        """bytes, tuple and frozenset keys become (cleaned) text, so the line can be written."""
        cleaned = Redactor().clean_mapping(
            {b"authorization": S, frozenset({f"token={S}"}): 1, (1, 2): 2, 7: 3, None: 4}
        )
        assert {
            "authorization": REDACTED,
            f"frozenset({{'token={REDACTED}'}})": 1,
            "(1, 2)": 2,
            7: 3,
            None: 4,
        } == cleaned

    def test_such_keys_reach_the_log_line(self) -> None:
        """A line whose field has bytes and tuple keys is written, cleaned, not lost."""
        with obskit.testing.isolated() as capture:
            obskit.get_logger("t").info("keys", m={b"cookie": S, ("a", 1): "x" * 10})
            line = _line(capture, "keys")
        assert {"cookie": REDACTED, "('a', 1)": "x" * 10} == line["m"]

    def test_plain_keys_are_decided_once(self) -> None:
        """A mapping with ordinary keys is still returned itself, the second time too."""
        redactor = Redactor()
        fields = {"order_id": 7, "user.name": "bo", 3: 4}
        assert fields is redactor.clean_mapping(fields)
        assert fields is redactor.clean_mapping(fields)


class _ItemsRaise(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("items() failed")


class _GetitemRaises(collections.abc.Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["password"])

    def __len__(self) -> int:
        return 1


class _IterRaises(list[Any]):
    def __iter__(self) -> Any:
        raise RuntimeError("iteration failed")


class TestObjectsThatFail:
    @pytest.mark.parametrize("value", [_ItemsRaise(a=1), _GetitemRaises(), _IterRaises([1])])
    def test_the_line_is_written_with_the_object_named(self, value: Any) -> None:
        """An object that raises when read is named in the line; the line and its other fields
        are written, and nothing reaches the application."""
        name = type(value).__name__
        with obskit.testing.isolated() as capture:
            obskit.get_logger("t").info("odd", value=value, order_id=7)
            line = _line(capture, "odd")
        assert f"<{name} object (unreadable)>" == line["value"]
        assert 7 == line["order_id"]


@pytest.mark.timeout(60)
def test_an_integer_too_long_to_write_keeps_its_line() -> None:
    """An int of 20,000 digits (more than Python writes as text) is replaced, the line kept."""
    with obskit.testing.isolated() as capture:
        before = counts().get(("truncated", "log"), 0)
        obskit.get_logger("t").info("big", n=10**20_000, order_id=7)
        line = _line(capture, "big")
        assert 1 + before == counts()[("truncated", "log")]
    assert 7 == line["order_id"]
    assert "...[truncated: an int of 66439 bits]..." == line["n"]


class TestHugeValuesAreNotCopied:
    def test_a_huge_bytes_value_is_cut_before_it_is_written_out(self) -> None:
        """A 20 MB body logged by mistake costs a bounded excerpt, not a repr() four times its
        size; its start is still redacted and the cut is counted."""
        body = b"password=" + S.encode() + b" " + b"\x00" * 20_000_000
        redactor = Redactor(max_length=1000)
        before = counts().get(("truncated", "log"), 0)
        tracemalloc.start()
        try:
            cleaned = redactor.clean_value(body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert 1_000_000 > peak
        assert 1000 >= len(cleaned)
        assert cleaned.startswith(f"b'password={REDACTED}")
        assert "...[truncated: 20000024 bytes]..." in cleaned
        assert 1 + before == counts()[("truncated", "log")]

    def test_a_huge_set_is_not_copied_whole(self) -> None:
        """A set of a million items is read up to the item cap, and says how many were left."""
        items = set(range(1_000_000))
        tracemalloc.start()
        try:
            cleaned = Redactor().clean_value(items)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert 1_000_000 > peak
        assert MAX_ITEMS + 1 == len(cleaned)
        assert f"...[truncated {1_000_000 - MAX_ITEMS} items]..." == cleaned[-1]


class TestSecretRouteParameters:
    @pytest.mark.parametrize(
        ("route", "path", "expected"),
        [
            ("/reset/{token}", f"/reset/{S}", f"/reset/{REDACTED}"),
            ("/reset/<uidb64>/<token>/", f"/reset/MTIz/{S}/", f"/reset/MTIz/{REDACTED}/"),
            ("/keys/<string:api_key>", f"/keys/{S}?page=2", f"/keys/{REDACTED}?page=2"),
            ("/files/{file_path:path}", f"/files/{S}/a", f"/files/{S}/a"),
            ("/users/{user_id}", f"/users/{S}", f"/users/{S}"),
            ("/reset/{token}", f"/prefix/reset/{S}", f"/prefix/reset/{REDACTED}"),
        ],
    )
    def test_a_path_segment_under_a_secret_parameter_name_is_redacted(
        self, route: str, path: str, expected: str
    ) -> None:
        """A reset link's token has no shape of its own; the route the framework matched names
        it, and its segment of the path is replaced (Starlette, Flask and Django spellings)."""
        assert expected == Redactor().clean_path(path, route)

    def test_the_access_line_and_the_span_carry_no_route_token(self, tmp_path: Any) -> None:
        """A Starlette route /reset/{token}: neither the access line nor the SERVER span's
        url.path holds the token."""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def reset(request: Any) -> PlainTextResponse:
            return PlainTextResponse("ok")

        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        app = obskit.ASGIMiddleware(Starlette(routes=[Route("/reset/{token}", reset)]))
        with (
            obskit.testing.isolated(sampling="all", trace_sink=str(tmp_path / "t.jsonl")) as cap,
            obskit.testing.capture_spans() as spans,
        ):
            asyncio.run(app(http_scope(f"/reset/{S}"), receive, send))
            assert obskit.testing.flush(10)
            access = _line(cap, "http.request")
        assert 200 == sent[0]["status"]
        assert f"/reset/{REDACTED}" == access["path"]
        [span] = spans
        assert f"/reset/{REDACTED}" == dict(span.attributes or {})["url.path"]
        assert S not in (tmp_path / "t.jsonl").read_text()
        assert S not in cap.output.getvalue().decode()
