"""The one-call writer writes what the chain writes; the access line is one of its lines."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from opentelemetry import trace
from structlog import DropEvent
from structlog.contextvars import bound_contextvars

import obskit
import obskit.testing
from obskit import context as obskit_context
from obskit.logs import REDACTED
from obskit.logs import setup as log_setup
from obskit.logs.buffer import TraceLogBuffer
from obskit.web.access_log import LOGGER_NAME, AccessLog, QueryRedactor

TIMESTAMP = re.compile(rb'"timestamp": ?"[^"]*"')  # (the stdlib fallback adds a space)
CREATED = 1_764_000_000.123456


def _masked(output: bytes) -> list[bytes]:
    """The lines of ``output`` with their timestamps replaced (they differ between two calls)."""
    return [TIMESTAMP.sub(b'"timestamp":"-"', line) for line in output.splitlines()]


def _chain_line(method: str, event_dict: dict[str, Any]) -> bytes:
    """What the processor chain writes for ``event_dict`` (the general path)."""
    out = io.BytesIO()
    sink = log_setup.sink()
    previous, sink.stream = sink.stream, out
    try:
        result: Any = dict(event_dict)
        for processor in log_setup._chain:
            result = processor(None, method, result)
        sink.write(result)
    except DropEvent:  # below the emit level: held for its trace instead
        pass
    finally:
        sink.stream = previous
    return out.getvalue()


def _writer_line(method: str, event_dict: dict[str, Any]) -> bytes:
    """What the one-call writer writes for ``event_dict``."""
    out = io.BytesIO()
    sink = log_setup.sink()
    previous, sink.stream = sink.stream, out
    try:
        log_setup._writer.emit(method, dict(event_dict))
    finally:
        sink.stream = previous
    return out.getvalue()


@contextmanager
def _in_span() -> Iterator[None]:
    from obskit.tracing.api import get_tracer

    span = get_tracer().start_span("op")
    try:
        with trace.use_span(span):
            yield
    finally:
        span.end()


def _failure() -> BaseException:
    try:
        raise ValueError("card declined")
    except ValueError as exc:
        return exc


EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("info", {"event": "plain", "_logger": "orders", "_created": CREATED}),
    (
        "warning",
        {
            "event": "Authorization: Bearer abcdefghijkl in text",
            "_logger": "auth",
            "_created": CREATED,
            "password": "hunter2",
            "nested": {"api_key": "k", "items": [{"token": "t"}, "Basic dXNlcjpwYXNz"]},
            "tenant_id": "call-wins",
            "count": 3,
        },
    ),
    (
        "error",
        {"event": "failed", "_logger": "pay", "_created": CREATED, "exc_info": _failure()},
    ),
    ("info", {"event": "bad \udcff bytes \n newline", "_created": CREATED, "big": 2**70}),
    ("debug", {"event": "below the level", "_logger": "x", "_created": CREATED}),
]


@pytest.mark.parametrize(("method", "event_dict"), EVENTS)
def test_writer_writes_the_chains_bytes(method: str, event_dict: dict[str, Any]) -> None:
    """For any line (secrets, a tenant, an exception, trace ids, bad text) both paths agree."""
    with (
        obskit.testing.isolated(redact_keys=["card"], log_buffer_level="debug"),
        obskit.bound(correlation_id="c0ffee", tenant_id="acme", card_holder="Ann"),
        bound_contextvars(request_path="/pay", session_id="s3cret"),
        _in_span(),
    ):
        assert log_setup._writer.enricher is not None
        written = _writer_line(method, event_dict)
        assert _chain_line(method, event_dict) == written
        if method == "debug":  # both held the line for the undecided trace instead
            holder = log_setup._gate.holder
            assert isinstance(holder, TraceLogBuffer)
            [(by_writer, by_chain)] = holder._held.values()
            assert by_chain == by_writer
            return
        line = json.loads(written)
        assert (REDACTED, REDACTED) == (line["card_holder"], line["session_id"])
        assert 32 == len(line["trace_id"])


def test_writer_is_off_when_the_chain_is_not_the_fixed_one() -> None:
    """Console output, an extra processor or an application-owned structlog use the chain."""

    def extra(logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return event_dict

    for settings in (
        {"log_format": "console"},
        {"redact_processor": extra},
        {"configure_logging": False},
    ):
        with obskit.testing.isolated(**settings):
            assert log_setup._writer.enricher is None
    with obskit.testing.isolated():
        assert log_setup._writer.enricher is not None
    assert log_setup._writer.enricher is None  # after shutdown


def _request_fields(path: str, status: int = 200, error_type: str = "") -> dict[str, Any]:
    """The fields of the access line for ``_write_access``'s request, as a log call's keys."""
    fields: dict[str, Any] = {
        "method": "GET", "route": "/items/{item_id}", "path": path, "status": status,
        "duration_ms": 1.234, "bytes": 42, "ttfb_ms": 0.4, "client": "10.0.0.1:5000",
    }  # fmt: skip
    if error_type:
        fields["error_type"] = error_type
    return fields


def _write_access(access: AccessLog, query: str = "", error: BaseException | None = None) -> None:
    path = "/items/7"
    if query:
        path = f"{path}?{QueryRedactor(obskit.logs.Redactor())(query)}"
    access.write(
        "GET", "/items/{item_id}", path, 500 if error else 200, 0.0012345, 0.0004, 42,
        "10.0.0.1:5000", "ValueError" if error else "", error,
    )  # fmt: skip


def _log_as_the_access_line(query: str = "", error: BaseException | None = None) -> None:
    """Log, through the logger, what ``_write_access`` writes as the access line."""
    path = "/items/7"
    if query:
        path = f"{path}?{QueryRedactor(obskit.logs.Redactor())(query)}"
    logger = obskit.get_logger(LOGGER_NAME)
    if error is None:
        logger.info("http.request", **_request_fields(path))
    else:
        fields = _request_fields(path, 500, error_type="ValueError")
        logger.error("http.request", exc_info=error, **fields)


def _access_lines(
    settings: dict[str, Any], query: str = "", error: BaseException | None = None
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The access line, then the line the logger writes for the same fields, with the captures."""
    with (
        obskit.testing.isolated(**settings) as capture,
        obskit.bound(correlation_id="c0ffee", tenant_id="acme"),
        _in_span(),
    ):
        _write_access(AccessLog(), query, error)
        _log_as_the_access_line(query, error)
    return _masked(capture.output.getvalue()), capture.logs


@pytest.mark.parametrize(
    "settings",
    [{}, {"redact": False}, {"redact_keys": ["client"]}],  # (the last: a key of the line is secret)
)
def test_access_line_is_the_line_the_logger_writes(settings: dict[str, Any]) -> None:
    """The access line is one of the chain's lines: the bytes and the captured dict that
    ``logger.info("http.request", **fields)`` gives, ids, trace and redaction included."""
    (access, logged), (access_dict, logged_dict) = _access_lines(settings, query="token=abc&x=1")
    assert logged == access
    assert {k: v for k, v in logged_dict.items() if k != "timestamp"} == {
        k: v for k, v in access_dict.items() if k != "timestamp"
    }
    assert list(logged_dict) == list(access_dict)
    line = json.loads(access)
    assert ("info", LOGGER_NAME, "http.request") == (line["level"], line["logger"], line["event"])
    assert "acme" == line["tenant_id"]
    assert 32 == len(line["trace_id"])
    if settings.get("redact", True):
        assert f"/items/7?token={REDACTED}&x=1" == line["path"].replace("%5B", "[").replace(
            "%5D", "]"
        )
    if "redact_keys" in settings:
        assert REDACTED == line["client"]


def test_access_line_redacts_credentials_in_text_values() -> None:
    """A credential in the path is masked in the access line as in any line."""
    with obskit.testing.isolated() as capture, _in_span():
        AccessLog().write("GET", "/x/{y}", "/x/Bearer abcdefghijk", 200, 0.001, None, 0, None, "")
    [line] = _masked(capture.output.getvalue())
    assert f"/x/Bearer {REDACTED}" == json.loads(line)["path"]


@pytest.mark.parametrize("in_span", [True, False])
def test_access_line_in_any_context(in_span: bool) -> None:
    """structlog context variables, a handler's own context with keys the line also has (a
    secret among them), or no span: the access line is the logger's line, in the chain's order,
    its own fields winning."""
    with (
        obskit.testing.isolated() as capture,
        obskit.bound(correlation_id="c0ffee", method="bound-method", trace_id="t", api_token="x"),
        bound_contextvars(status="from-structlog", session_id="s3cret", route="/theirs"),
        _in_span() if in_span else nullcontext(),
    ):
        _write_access(AccessLog())
        _log_as_the_access_line()
    access, logged = _masked(capture.output.getvalue())
    assert logged == access
    access_dict, logged_dict = capture.logs
    assert list(logged_dict) == list(access_dict)
    line = json.loads(access)
    assert ("GET", 200, "/items/{item_id}", REDACTED, REDACTED) == (
        line["method"],
        line["status"],
        line["route"],
        line["api_token"],
        line["session_id"],
    )
    assert in_span == (32 == len(line["trace_id"]))


def test_access_line_without_taps_is_rendered_as_every_line() -> None:
    """With no capture tapping the sink, the line is rendered and written in one call, and text
    orjson refuses (a lone surrogate) falls back as json_line does."""
    with obskit.testing.isolated(), obskit.bound(correlation_id="c0ffee"), _in_span():
        sink = log_setup.sink()
        taps, sink.taps = sink.taps, []
        out = io.BytesIO()
        previous, sink.stream = sink.stream, out
        try:
            access = AccessLog()
            _write_access(access, query="token=abc")
            access.write("GET", "/x", "/x/\udcff", 200, 0.001, None, 0, None, "")
            _log_as_the_access_line(query="token=abc")
        finally:
            sink.taps, sink.stream = taps, previous
    line, odd, logged = _masked(out.getvalue())
    assert logged == line
    assert "c0ffee" == json.loads(line)["correlation_id"]
    assert "/x/\udcff" == json.loads(odd)["path"]


def test_access_exception_line_is_an_error_line() -> None:
    """A request that raised is logged at error level with structured exception fields."""
    (access, logged), _ = _access_lines({}, error=_failure())
    assert logged == access
    line = json.loads(access)
    assert ("error", "ValueError") == (line["level"], line["exception"][0]["exc_type"])


def test_access_line_below_the_emit_level_is_held_by_the_trace_buffer() -> None:
    """Above info, the access line waits for its trace's decision, then is written as usual."""
    with obskit.testing.isolated(log_level="warning", log_buffer_level="info") as capture:
        states: dict[int, int] = {}
        buffer = TraceLogBuffer(lambda trace_id: states.get(trace_id, 1))
        log_setup.set_holder(buffer)
        with _in_span():
            trace_id = trace.get_current_span().get_span_context().trace_id
            AccessLog().write("GET", "/", "/", 200, 0.001, None, 0, None, "")
        assert b"" == capture.output.getvalue()
        assert 1 == buffer.counts["held"]
        states[trace_id] = 2
        buffer.release(trace_id, True)
    [line] = _masked(capture.output.getvalue())
    assert "info" == json.loads(line)["level"]


def test_access_line_below_every_level_is_dropped() -> None:
    """Below the emit level and the buffer level, the access line is not held for its trace."""
    with obskit.testing.isolated(log_level="warning", log_buffer_level="warning") as capture:
        buffer = TraceLogBuffer(lambda trace_id: 1)
        log_setup.set_holder(buffer)
        with _in_span():
            AccessLog().write("GET", "/", "/", 200, 0.001, None, 0, None, "")
        assert 0 == buffer.counts["held"]
    assert b"" == capture.output.getvalue()


def test_stdlib_and_structlog_lines_agree_through_the_writer() -> None:
    """A stdlib record and a structlog call with the same content give the same line."""
    with obskit.testing.isolated() as capture, obskit.bound(tenant_id="acme"):
        logging.getLogger("same").warning("hello %s", "world", extra={"k": 1})
        obskit.get_logger("same").warning("hello %s", "world", k=1)
    first, second = _masked(capture.output.getvalue())
    assert first == second


def test_a_detached_stream_is_counted_not_raised() -> None:
    """A detached text stream as the log stream: setting it and logging to it never raise."""
    from obskit import _guard

    stream = io.TextIOWrapper(io.BytesIO())
    stream.detach()
    with obskit.testing.isolated() as capture:
        log_setup.sink().stream = stream
        previous = _guard.set_strict(False)
        try:
            obskit.get_logger().info("lost")
        finally:
            _guard.set_strict(previous)
        assert 1 == capture.sample("obskit_internal_errors_total", {"component": "logs.chain"})


def _in_request_context(
    fields: dict[str, Any], extra: dict[str, Any], **settings: Any
) -> tuple[bytes, bytes]:
    """The access line inside a request context ``fields`` (plus ``extra`` bound), then the line
    the logger writes there for the same fields."""
    with obskit.testing.isolated(**settings) as capture, _in_span():
        token = obskit_context.push(fields)
        try:
            with obskit.bound(**extra) if extra else nullcontext():
                AccessLog().write("GET", "/", "/", 200, 0.001, None, 0, None, "")
                obskit.get_logger(LOGGER_NAME).info(
                    "http.request", method="GET", route="/", path="/", status=200,
                    duration_ms=1.0, bytes=0,
                )  # fmt: skip
        finally:
            obskit_context.pop(token)
    access, logged = _masked(capture.output.getvalue())
    return access, logged


@pytest.mark.parametrize(
    ("fields", "extra", "settings"),
    [
        ({"correlation_id": "c0ffee", "tenant_id": "acme"}, {}, {}),
        ({"correlation_id": "c0ffee"}, {"api_token": "t0ps3cret"}, {}),  # bound by the handler
        ({"correlation_id": "c0ffee"}, {"note": "Bearer abcdefghijkl"}, {}),
        ({"correlation_id": "c0ffee", "user": "Bearer abcdefghijkl"}, {}, {}),  # not only ids
        ({"correlation_id": "c0ffee", "tenant_id": "acme"}, {}, {"redact_keys": ["tenant"]}),
    ],
)
def test_request_context_is_redacted_in_the_access_line(
    fields: dict[str, Any], extra: dict[str, Any], settings: dict[str, Any]
) -> None:
    """The request's context (the middleware's ids, what the handler bound) is redacted in the
    access line as in any line."""
    access, logged = _in_request_context(fields, extra, **settings)
    assert logged == access
    line = json.loads(access)
    assert "Bearer abcdefghijkl" not in access.decode()
    assert "t0ps3cret" not in access.decode()
    assert "c0ffee" == line["correlation_id"]
    if "redact_keys" in settings:
        assert REDACTED == line["tenant_id"]
    elif "tenant_id" in fields:
        assert "acme" == line["tenant_id"]


@pytest.mark.parametrize(
    ("cid", "secret"),
    [
        ("token:abcdefghijkl", "abcdefghijkl"),
        ("password=hunter2", "hunter2"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", "eyJzdWIi"),
    ],
)
def test_checked_ids_holding_a_secret_shape_are_redacted(cid: str, secret: str) -> None:
    """An id clean_id accepts but the policy would change is redacted in the access line."""
    assert cid == obskit_context.clean_id(cid)
    access, logged = _in_request_context({"correlation_id": cid, "tenant_id": "a"}, {})
    assert logged == access
    assert secret not in access.decode()


def test_generated_and_plain_ids_are_written_as_they_are() -> None:
    """Generated ids and short plain tenant ids stand in the access line unchanged."""
    fields = {"correlation_id": obskit_context.new_id(), "tenant_id": "acme"}
    access, logged = _in_request_context(fields, {})
    assert logged == access
    line = json.loads(access)
    assert (fields["correlation_id"], "acme") == (line["correlation_id"], line["tenant_id"])


@pytest.mark.parametrize(
    "event_dict",
    [
        {"a": 1, "b": "t", "c": None},
        {"n": {7: "x", 2.5: "y", True: "z", None: "w"}},
        {"bad": "\udcff", "big": 2**70},
        {"obj": REDACTED.encode()},
    ],
)
def test_rendering_tries_plain_keys_first_with_the_same_result(event_dict: dict[str, Any]) -> None:
    """A line renders as orjson with non-string keys allowed would render it (or the stdlib)."""
    orjson = pytest.importorskip("orjson")
    from obskit.logs.render import json_line, json_renderer

    try:
        expected = orjson.dumps(event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        expected = json.dumps(event_dict, default=repr, ensure_ascii=True).encode()
    assert expected == json_renderer(None, "info", event_dict)
    assert expected + b"\n" == json_line(event_dict)


def test_lines_from_many_threads_never_interleave(tmp_path: Path) -> None:
    """Each line is one write: lines logged by concurrent threads to a real file stay whole."""
    import threading

    path = tmp_path / "lines.jsonl"
    with obskit.testing.isolated(), open(path, "w") as stream:
        log_setup.sink().stream = stream
        log = obskit.get_logger("t")
        access = AccessLog()
        padding = "x" * 5000  # lines longer than a pipe's atomic write and the buffer's size

        def work(n: int) -> None:
            for i in range(100):
                log.info("line", thread=n, i=i, padding=padding)
                access.write("GET", "/", f"/{n}/{i}", 200, 0.001, None, 0, None, "")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = path.read_text().splitlines()
    assert 1600 == len(lines)
    parsed = [json.loads(line) for line in lines]
    assert 800 == sum(1 for line in parsed if line["event"] == "http.request")


def test_structlog_context_variables_read_as_structlog_reads_them() -> None:
    """Unset, one, several and cleared structlog context variables give get_contextvars()."""
    from structlog.contextvars import bind_contextvars, get_contextvars, unbind_contextvars

    processors_module = sys.modules["obskit.logs.processors"]
    read = processors_module._structlog_context
    with bound_contextvars(first="1"):
        assert get_contextvars() == read() == {"first": "1"}
        with bound_contextvars(second=2, third=None):
            assert list(get_contextvars().items()) == list(read().items())
        unbind_contextvars("first")
        assert {} == get_contextvars() == read()
        bind_contextvars(first="again")
        assert {"first": "again"} == read()
    assert get_contextvars() == read()


def test_an_access_log_follows_a_reconfiguration() -> None:
    """An AccessLog made before init() changes redaction applies the new rules to its lines."""
    with obskit.testing.isolated() as capture:
        access = AccessLog()
        access.write("GET", "/", "/", 200, 0.001, None, 0, "10.0.0.1", "")
        obskit.init(log_format="json", redact_keys=["client"])
        log_setup.sink().stream = capture.output
        access.write("GET", "/", "/", 200, 0.001, None, 0, "10.0.0.1", "")
    before, after = [json.loads(line) for line in capture.output.getvalue().splitlines()[-2:]]
    assert ("10.0.0.1", REDACTED) == (before["client"], after["client"])


def test_timestamps_across_seconds_and_a_clock_step_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """One formatter, whose cached second goes forward and back, formats each time as datetime."""
    from datetime import datetime, timezone

    processors_module = sys.modules["obskit.logs.processors"]
    formatter = processors_module._TimestampFormatter()
    for ns in (
        1_764_000_000_999_999_999,
        1_764_000_001_000_000_000,
        1_764_000_001_000_999_000,
        1_763_999_999_500_000_000,  # the clock stepped back
        1_764_000_001_000_000_001,
    ):
        monkeypatch.setattr(processors_module, "_time_ns", lambda ns=ns: ns)
        seconds, nanos = divmod(ns, 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=nanos // 1000)
        assert moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == formatter.now()


@pytest.mark.parametrize(
    "ns", [1_764_000_000_000_000_000, 1_764_000_000_000_001_999, 1_764_000_059_999_999_999]
)
def test_timestamps_from_nanoseconds(monkeypatch: pytest.MonkeyPatch, ns: int) -> None:
    """The current time is formatted as datetime formats it, truncated to the microsecond."""
    from datetime import datetime, timezone

    processors_module = sys.modules["obskit.logs.processors"]
    monkeypatch.setattr(processors_module, "_time_ns", lambda: ns)
    seconds, nanos = divmod(ns, 1_000_000_000)
    expected = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=nanos // 1000)
    formatter = processors_module._TimestampFormatter()
    assert expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == formatter.now()


# Any code point (lone surrogates too), or text the redactor acts on.
_TEXT = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["Bearer abcdefghijkl", "/p?x=token  s3cr3t-value", "Basic dXNlcjpwYXNz", "password", "method"]
)


@examples(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=_TEXT,
    client=st.none() | _TEXT,
    error_type=_TEXT,
    status=st.integers(0, 999),
    duration=st.floats(0, 1e6),
    ttfb=st.none() | st.floats(0, 1e6),
    body_bytes=st.integers(0, 2**40),
    extra=st.dictionaries(_TEXT, _TEXT | st.integers(), max_size=3),
)
def test_access_line_is_the_loggers_line_for_any_values(
    path: str,
    client: str | None,
    error_type: str,
    status: int,
    duration: float,
    ttfb: float | None,
    body_bytes: int,
    extra: dict[str, Any],
) -> None:
    """Whatever the values and the bound context, the access line is the line the logger
    writes for the same fields."""
    fields: dict[str, Any] = {
        "method": "GET", "route": "/r/{x}", "path": path, "status": status,
        "duration_ms": int(duration * 1e6) / 1000.0, "bytes": body_bytes,
    }  # fmt: skip
    if ttfb is not None:
        fields["ttfb_ms"] = int(ttfb * 1e6) / 1000.0
    if client:
        fields["client"] = client
    if error_type:
        fields["error_type"] = error_type
    with obskit.testing.isolated() as capture, _in_span():
        token = obskit_context.push({"correlation_id": "c0ffee", **extra})
        try:
            AccessLog().write(
                "GET", "/r/{x}", path, status, duration, ttfb, body_bytes, client, error_type
            )
            obskit.get_logger(LOGGER_NAME).info("http.request", **fields)
        finally:
            obskit_context.pop(token)
    access, logged = _masked(capture.output.getvalue())
    assert logged == access
