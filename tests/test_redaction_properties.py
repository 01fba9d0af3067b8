"""Property tests: secrets generated in every shape never reach any sink.

Each example makes a fresh secret (letters and digits, a digit always among them), wraps it in
one of the shapes services log and trace (a secret key in any spelling, in a mapping of any type,
a header list in str or bytes, a URL, a DSN, a query or matrix parameter, free text, an exception
message, a stdlib ``%s`` argument, a mapping's key, the resource), sends it through one signal,
and searches that signal's sink for it: the log stream, the spans as OTLP encodes them, the local
sink file, the access line, and the OpenMetrics exposition with its exemplars.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import requests.structures
import starlette.datastructures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import Status, StatusCode
from prometheus_client.openmetrics.exposition import generate_latest

import obskit
import obskit.testing
from otlp_support import EncodingExporter
from web_support import http_scope

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
secrets = st.builds(
    lambda head, digit, tail: f"{head}{digit}{tail}",
    st.text(_ALNUM, min_size=6, max_size=16),
    st.sampled_from("0123456789"),
    st.text(_ALNUM, min_size=5, max_size=16),
)

# Secret key names as words; each example spells one in a random style.
_KEY_WORDS = [
    ("password",),
    ("db", "password"),
    ("passwd",),
    ("api", "key"),
    ("x", "api", "key"),
    ("access", "token"),
    ("refresh", "token"),
    ("auth", "token"),
    ("client", "secret"),
    ("aws", "secret", "access", "key"),
    ("aws", "access", "key", "id"),
    ("aws", "session", "token"),
    ("session", "id"),
    ("private", "key"),
    ("signing", "key"),
    ("credentials",),
    ("signature",),
]


def _spell(words: tuple[str, ...], style: str) -> str:
    if style == "camel":
        return words[0] + "".join(word.title() for word in words[1:])
    if style == "upper":
        return "_".join(words).upper()
    if style == "title-kebab":
        return "-".join(word.title() for word in words)
    return {"snake": "_", "kebab": "-", "dotted": "."}[style].join(words)


keys = st.builds(
    _spell,
    st.sampled_from(_KEY_WORDS),
    st.sampled_from(["snake", "kebab", "dotted", "camel", "upper", "title-kebab"]),
)
# Header names whose value is secret, as servers and clients spell them.
header_names = st.sampled_from(
    ["authorization", "Authorization", "cookie", "Cookie", "set-cookie", "X-Api-Key", "x-auth-key"]
)


def _text_shape(kind: str, key: str, secret: str) -> str:
    return {
        "kv": f"login failed {key}={secret} from 10.0.0.1",
        "colon": f"config {key}: {secret}",
        "json": f'{{"{key}": "{secret}", "n": 1}}',
        "repr": f"Config(user='bob', {key}='{secret}')",
        "url": f"calling https://bob:{secret}@api.example.com/v1/x",
        "dsn": f"postgresql://app:{secret}@db.internal:5432/orders",
        "query": f"GET https://api.example.com/x?page=2&{key}={secret}&q=1",
        "matrix": f"/items;{key}={secret}?page=2",
        "bearer": f"sent Authorization: Bearer {secret}",
        "header line": f"Cookie: sid={secret}; theme=dark",
    }[kind]


text_kinds = st.sampled_from(
    ["kv", "colon", "json", "repr", "url", "dsn", "query", "matrix", "bearer", "header line"]
)


def _container(kind: str, name: str, key: str, secret: str) -> Any:
    if kind == "dict":
        return {key: secret, "accept": "*/*"}
    if kind == "nested":
        return {"outer": [{"inner": ({key: secret},)}]}
    if kind == "starlette":
        return starlette.datastructures.Headers({name: secret, "accept": "*/*"})
    if kind == "httpx":
        return httpx.Headers({name: secret})
    if kind == "requests":
        return requests.structures.CaseInsensitiveDict({name: secret})
    if kind == "str pairs":
        return [(name, secret), ("accept", "*/*")]
    return [(name.lower().encode(), secret.encode()), (b"accept", b"*/*")]


container_kinds = st.sampled_from(
    ["dict", "nested", "starlette", "httpx", "requests", "str pairs", "bytes pairs"]
)


def _raise(message: str) -> None:
    raise RuntimeError(message)


@SETTINGS
@given(
    secret=secrets,
    key=keys,
    name=header_names,
    container=container_kinds,
    text_kind=text_kinds,
    console=st.booleans(),
)
def test_log_lines_carry_no_secret(
    secret: str, key: str, name: str, container: str, text_kind: str, console: bool
) -> None:
    """A secret in a field, a mapping, a header list, free text or an exception stays out of
    the log stream, JSON or console, structlog or stdlib."""
    text = _text_shape(text_kind, key, secret)
    with obskit.testing.isolated(log_format="console" if console else "json") as capture:
        log = obskit.get_logger("app")
        log.info("field", **{key: secret})
        log.info("container", headers=_container(container, name, key, secret))
        log.info(text)
        log.info("value", note=text)
        log.info("keyed", index={text: 1, key.encode(): secret.encode()})
        logging.getLogger("lib").warning("stdlib %s", text)
        try:
            _raise(text)
        except RuntimeError:
            log.exception("failed")
            logging.getLogger("lib").exception("failed too")
    output = capture.output.getvalue().decode()
    assert 8 <= output.count("\n")
    assert secret not in output


@SETTINGS
@given(secret=secrets, key=keys, text_kind=text_kinds, sampling=st.sampled_from(["tail", "all"]))
def test_spans_carry_no_secret(
    secret: str, key: str, text_kind: str, sampling: str, tmp_path_factory: Any
) -> None:
    """A secret in a span's name, attributes, exception event, status or resource reaches
    neither the OTLP encoding nor the local sink file."""
    text = _text_shape(text_kind, key, secret)
    sink: Path = tmp_path_factory.mktemp("sink") / "traces.jsonl"
    encoder = EncodingExporter()
    for exporter in ({"span_exporter": encoder}, {"trace_sink": str(sink)}):
        resource = {key: secret, "deploy.note": text}
        with obskit.testing.isolated(sampling=sampling, resource_attributes=resource, **exporter):
            tracer = obskit.get_tracer()
            with tracer.start_as_current_span(f"work {text}") as span:
                span.set_attribute(key, secret)
                span.set_attribute("note", text)
                span.set_attribute("http.request.header.authorization", [f"Bearer {secret}"])
                span.record_exception(RuntimeError(text))
                span.set_status(Status(StatusCode.ERROR, text))
            assert obskit.testing.flush(10)
    assert encoder.received.raw()
    assert secret.encode() not in encoder.received.raw()
    assert sink.read_text()
    assert secret not in sink.read_text()


_PATH_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


@SETTINGS
@given(secret=secrets, key=keys, name=header_names)
def test_access_lines_and_exposition_carry_no_secret(secret: str, key: str, name: str) -> None:
    """A secret in the path's matrix parameters, the query or a header stays out of the access
    line, the request's span and the OpenMetrics exposition with its exemplars."""
    assert _PATH_KEY.match(key)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = http_scope(f"/orders;{key}={secret}", {name: secret})
    scope["query_string"] = f"page=2&{key}={secret}".encode()
    encoder = EncodingExporter()
    with (
        obskit.testing.isolated(span_exporter=encoder) as capture,
        obskit.testing.capture_spans() as spans,
    ):
        asyncio.run(obskit.ASGIMiddleware(app)(scope, receive, send))
        assert obskit.testing.flush(10)
        exposition = generate_latest(capture.registry).decode()
    assert "# {trace_id=" in exposition  # the error trace was kept and linked
    assert secret not in exposition
    output = capture.output.getvalue().decode()
    assert '"obskit.access"' in output
    assert secret not in output
    assert spans
    assert secret not in repr([dict(span.attributes or {}) for span in spans])
    assert secret.encode() not in encoder.received.raw()
