"""Structured JSON logs: fields, trace ids, redaction, injection safety, stdlib bridge."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

import obskit
import obskit.testing
from obskit.logs import REDACTED, processors

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _lines(capture: obskit.testing.Capture) -> list[dict[str, object]]:
    return [json.loads(line) for line in capture.output_lines()]


class TestLineShape:
    def test_every_line_has_the_contract_fields(self) -> None:
        """A line has UTC timestamp, level, logger, event, service identity and bound context."""
        with (
            obskit.testing.isolated(
                service_name="checkout", service_version="1.4.2", environment="prod"
            ) as capture,
            obskit.bound(correlation_id="c", tenant_id="acme"),
        ):
            obskit.get_logger("orders").info("order.placed", order_id=7)
        (line,) = _lines(capture)
        assert ISO_UTC.match(str(line["timestamp"]))
        assert {
            "level": "info",
            "logger": "orders",
            "event": "order.placed",
            "service": "checkout",
            "service_version": "1.4.2",
            "environment": "prod",
            "pid": os.getpid(),
            "correlation_id": "c",
            "tenant_id": "acme",
            "order_id": 7,
        } == {k: v for k, v in line.items() if k != "timestamp"}

    def test_call_keys_win_over_bound_context(self) -> None:
        """A key passed in the log call overrides the same bound key for that line only."""
        with obskit.testing.isolated() as capture, obskit.bound(tenant_id="a"):
            obskit.get_logger().info("e", tenant_id="b")
        assert "b" == _lines(capture)[0]["tenant_id"]

    def test_trace_and_span_ids_of_the_active_span(self) -> None:
        """A line inside an active span carries its trace id (32 hex) and span id (16 hex)."""
        tracer = TracerProvider().get_tracer("t")
        with obskit.testing.isolated() as capture:
            log = obskit.get_logger("x")
            log.info("outside")
            with tracer.start_as_current_span("work") as span:
                log.info("inside")
                logging.getLogger("std").warning("inside stdlib")
        outside, inside, inside_std = _lines(capture)
        ctx = span.get_span_context()
        assert "trace_id" not in outside
        for line in (inside, inside_std):
            assert f"{ctx.trace_id:032x}" == line["trace_id"]
            assert f"{ctx.span_id:016x}" == line["span_id"]
            assert re.fullmatch(r"[0-9a-f]{32}", str(line["trace_id"]))
            assert re.fullmatch(r"[0-9a-f]{16}", str(line["span_id"]))

    def test_exceptions_are_structured(self) -> None:
        """log.exception() renders the exception as fields: type, value and frames, no locals."""
        with obskit.testing.isolated() as capture:
            try:
                secret_local = "hunter2"  # noqa: F841 - must not appear in the output
                raise ValueError("bad order")
            except ValueError:
                obskit.get_logger().exception("failed")
        (line,) = _lines(capture)
        assert "error" == line["level"]
        (exc,) = line["exception"]  # type: ignore[misc]
        assert "ValueError" == exc["exc_type"]
        assert "bad order" == exc["exc_value"]
        assert exc["frames"]
        assert "hunter2" not in capture.output.getvalue().decode()

    def test_levels_below_threshold_are_dropped(self) -> None:
        """Lines below log_level are not written (when no trace holds them)."""
        with obskit.testing.isolated(log_level="warning", tracing=False) as capture:
            log = obskit.get_logger()
            log.info("no")
            log.warning("yes")
            logging.getLogger("std").info("no")
        assert ["yes"] == [line["event"] for line in _lines(capture)]

    def test_positional_args_are_interpolated(self) -> None:
        """structlog-style positional arguments format the event like stdlib logging."""
        with obskit.testing.isolated() as capture:
            obskit.get_logger().info("hello %s %d", "world", 3)
        assert "hello world 3" == _lines(capture)[0]["event"]


class TestRedaction:
    def test_default_keys_at_any_depth(self) -> None:
        """Default secret keys never appear, in nested dicts and lists too."""
        with obskit.testing.isolated() as capture:
            obskit.get_logger().info(
                "req",
                password="p1",
                headers={"Authorization": "Basic dXNlcjpwYXNz", "Cookie": "sid=c1", "Accept": "*"},
                items=[{"api_key": "k1"}, {"nested": {"client_secret": "s1", "Set-Cookie": "c2"}}],
                db_passwd="p2",
                refresh_token="t1",
                **{"X-Api-Key": "k2"},
            )
        text = capture.output.getvalue().decode()
        for secret in ("p1", "dXNlcjpwYXNz", "sid=c1", "k1", "s1", "c2", "p2", "t1", "k2"):
            assert secret not in text
        (line,) = _lines(capture)
        assert REDACTED == line["password"]
        assert "*" == line["headers"]["Accept"]  # type: ignore[index]

    def test_bearer_tokens_in_values(self) -> None:
        """A bearer token inside free text is masked, the rest of the text kept."""
        with obskit.testing.isolated() as capture:
            obskit.get_logger().info("calling with Bearer eyJhbGciOiJIUzI1NiJ9.abc.def now")
        event = str(_lines(capture)[0]["event"])
        assert "eyJhbGci" not in event
        assert event.startswith("calling with Bearer [REDACTED]")

    def test_credentials_in_any_letter_case(self) -> None:
        """Upper-case schemes (``BEARER``, ``TOKEN``, ``BASIC``) are masked in text and values."""
        with obskit.testing.isolated() as capture:
            obskit.get_logger().info(
                "AUTHORIZATION: BEARER abcdefghijkl", header="TOKEN s3cr3tv4lue"
            )
            obskit.get_logger().info("x", nested={"h": "BASIC dXNlcjpwYXNz"})
        first, second = _lines(capture)
        assert "AUTHORIZATION: BEARER [REDACTED]" == first["event"]
        assert "TOKEN [REDACTED]" == first["header"]
        assert {"h": "BASIC [REDACTED]"} == second["nested"]

    def test_extra_keys_and_stdlib_extras(self) -> None:
        """redact_keys extends the list; stdlib `extra=` fields are redacted too."""
        with obskit.testing.isolated(redact_keys="card_number") as capture:
            obskit.get_logger().info("pay", card_number="4111111111111111")
            logging.getLogger("std").info("login", extra={"password": "p3"})
        text = capture.output.getvalue().decode()
        assert "4111111111111111" not in text
        assert "p3" not in text

    def test_bound_context_is_redacted(self) -> None:
        """Secrets bound into the context are redacted like call arguments."""
        with obskit.testing.isolated() as capture, obskit.bound(session_token="t9"):
            obskit.get_logger().info("x")
        assert "t9" not in capture.output.getvalue().decode()

    def test_redaction_can_be_turned_off(self) -> None:
        """redact=False keeps values (for local debugging)."""
        with obskit.testing.isolated(redact=False) as capture:
            obskit.get_logger().info("x", password="visible")
        assert "visible" == _lines(capture)[0]["password"]


class TestInjection:
    def test_newlines_cannot_forge_a_line(self) -> None:
        """A value with CR/LF and control characters stays inside one JSON line."""
        forged = 'ok"}\n{"level": "critical", "event": "forged"}\r\x1b[31m\x00'
        with obskit.testing.isolated() as capture:
            obskit.get_logger().info(forged, user=forged)
            logging.getLogger("std").info(forged)
        raw = capture.output_lines()
        assert 2 == len(raw)
        for text in raw:
            assert forged == json.loads(text)["event"]

    def test_undecodable_bytes_and_huge_ints_render(self) -> None:
        """Lone surrogates (from non-UTF-8 input) and >64-bit ints still give valid JSON."""
        bad = b"caf\xe9".decode("utf-8", "surrogateescape")
        with obskit.testing.isolated() as capture:
            obskit.get_logger().info("x", name=bad, big=2**80, obj=object())
        (line,) = _lines(capture)
        assert 2**80 == line["big"]
        assert "caf" in str(line["name"])

    def test_console_renderer_escapes_control_characters(self) -> None:
        """The console format keeps a line with CR/LF to a single output line."""
        with obskit.testing.isolated(log_format="console") as capture:
            obskit.get_logger().info("a\nb", detail="c\r\nd")
        assert 1 == len(capture.output_lines())


class TestStdlibBridge:
    def test_stdlib_lines_are_the_same_json(self) -> None:
        """logging.getLogger(x) lines carry the same fields and ids as structlog lines."""
        with (
            obskit.testing.isolated(service_name="svc") as capture,
            obskit.bound(correlation_id="c7"),
        ):
            logging.getLogger("third.party").error("db down: %s", "timeout")
        (line,) = _lines(capture)
        assert "third.party" == line["logger"]
        assert "error" == line["level"]
        assert "db down: timeout" == line["event"]
        assert "c7" == line["correlation_id"]
        assert "svc" == line["service"]

    def test_server_loggers_are_adopted_and_restored(self) -> None:
        """uvicorn/gunicorn loggers lose their own handlers to the bridge, and get them back."""
        access = logging.getLogger("uvicorn.access")
        own = logging.StreamHandler(io.StringIO())
        access.addHandler(own)
        access.propagate = False
        try:
            with obskit.testing.isolated() as capture:
                assert own not in access.handlers
                access.info('127.0.0.1 - "GET / HTTP/1.1" 200')
            assert ["uvicorn.access"] == [line["logger"] for line in _lines(capture)]
            assert own in access.handlers
            assert access.propagate is False
        finally:
            access.removeHandler(own)
            access.propagate = True

    def test_existing_root_handlers_are_restored_on_shutdown(self) -> None:
        """init() replaces root handlers (no duplicate lines); shutdown() puts them back."""
        root = logging.getLogger()
        own = logging.StreamHandler(io.StringIO())
        root.addHandler(own)
        try:
            obskit.init(log_stream="stderr")
            assert own not in root.handlers
            obskit.shutdown()
            assert own in root.handlers
        finally:
            root.removeHandler(own)

    def test_bad_format_arguments_do_not_raise(self) -> None:
        """A stdlib call with mismatched % arguments is logged, not raised."""
        with obskit.testing.isolated() as capture:
            logging.getLogger("std").info("%s %s", "only-one")
        assert "only-one" in str(_lines(capture)[0]["event"])


class TestOwnership:
    def test_logger_created_before_init_follows_init(self) -> None:
        """A module-level logger made before init() writes through obskit's chain after it."""
        early = obskit.get_logger("early")
        with obskit.testing.isolated(service_name="late") as capture:
            early.info("hi")
        assert "late" == _lines(capture)[0]["service"]

    def test_opt_out_leaves_structlog_and_root_alone(self) -> None:
        """configure_logging=False touches neither structlog's config nor the root logger."""
        structlog.reset_defaults()
        before = structlog.get_config()
        root_handlers = list(logging.getLogger().handlers)
        obskit.init(configure_logging=False)
        assert before == structlog.get_config()
        assert root_handlers == logging.getLogger().handlers

    def test_processors_plug_into_a_users_chain(self) -> None:
        """A user's own structlog chain can use obskit's processors before its renderer."""
        settings = obskit.init(configure_logging=False, service_name="own") or None
        assert settings is None
        from obskit import _runtime

        runtime = _runtime.current()
        assert runtime is not None
        out = io.StringIO()
        structlog.configure(
            processors=[*processors(runtime.settings), structlog.processors.JSONRenderer()],
            logger_factory=structlog.PrintLoggerFactory(out),
            cache_logger_on_first_use=False,
        )
        try:
            with obskit.bound(tenant_id="t1"):
                structlog.get_logger().info("mine", password="x")
        finally:
            structlog.reset_defaults()
        line = json.loads(out.getvalue())
        assert ("own", "t1", REDACTED) == (line["service"], line["tenant_id"], line["password"])


def test_internal_failure_in_chain_does_not_reach_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a step of the chain fails, structlog and stdlib callers go on; each failure is counted."""
    from obskit import _guard

    # (obskit.logs.processors the function shadows the module of that name)
    log_processors = sys.modules["obskit.logs.processors"]

    def broken(now: float) -> str:
        raise RuntimeError("processor bug")

    with obskit.testing.isolated() as capture:
        # The enricher is a step of every path a line can take (the chain and the one-call writer).
        monkeypatch.setattr(log_processors, "format_timestamp", broken)
        previous = _guard.set_strict(False)
        try:
            logging.getLogger("std").error("still fine")
            obskit.get_logger().error("still fine")
        finally:
            _guard.set_strict(previous)
            monkeypatch.undo()
        obskit.get_logger().info("after")
        errors = capture.sample
        assert 1 == errors("obskit_internal_errors_total", {"component": "logs.stdlib_bridge"})
        assert 1 == errors("obskit_internal_errors_total", {"component": "logs.chain"})
    assert ["after"] == [line["event"] for line in _lines(capture)]


def test_structlog_contextvars_are_merged() -> None:
    """Fields bound with structlog.contextvars (by apps or libraries) appear, redacted too."""
    from structlog.contextvars import bound_contextvars

    with obskit.testing.isolated() as capture:
        with bound_contextvars(request_path="/pay", api_token="t0ps3cret"):
            obskit.get_logger().info("inside")
            logging.getLogger("std").info("inside stdlib")
        obskit.get_logger().info("outside")
    inside, inside_std, outside = _lines(capture)
    assert "/pay" == inside["request_path"] == inside_std["request_path"]
    assert REDACTED == inside["api_token"]
    assert "request_path" not in outside
