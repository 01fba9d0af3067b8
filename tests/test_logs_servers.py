"""Logs a user can trust under real servers: one line per failure with its ids, JSON from every
process (workers and their parent) with its pid, no colour codes, no library chatter in a trace."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import Status, StatusCode

import obskit
import obskit.testing
from obskit.logs import server as server_logs
from server_support import Service, serve

CHATTY = ("httpcore.http11", "httpx", "urllib3.connectionpool", "hpack.hpack", "asyncio")


def _raw_lines(service: Service) -> list[str]:
    return [line for line in service.log.read_text(errors="replace").splitlines() if line]


def _json_lines(service: Service) -> list[dict[str, Any]]:
    """Every line the service wrote, each of which must be one JSON object."""
    lines = []
    for raw in _raw_lines(service):
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            pytest.fail(f"a line that is not JSON: {raw!r}")
    return lines


def _get(service: Service, path: str, request_id: str) -> int:
    # A connection per request: uvicorn closes a kept-alive one after an application exception.
    return httpx.get(
        service.url + path, headers={"x-request-id": request_id}, timeout=10
    ).status_code


def _drive(service: Service) -> None:
    assert 500 == _get(service, "/boom", "boom-1")
    if "logs_app" in str(service.log):
        assert 503 == _get(service, "/chatty", "chatty-1")
    assert 200 == _get(service, "/ok", "ok-1")
    expected = 3 if "logs_app" in str(service.log) else 2
    deadline = time.monotonic() + 15
    while len(service.access()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)


def _check_failure_is_one_line_with_ids(lines: list[dict[str, Any]]) -> None:
    with_traceback = [line for line in lines if "exception" in line]
    assert 1 == len(with_traceback), with_traceback
    (failed,) = with_traceback
    assert ("obskit.access", "boom-1") == (failed["logger"], failed["correlation_id"])
    assert failed["trace_id"]
    assert "LookupError" == failed["exception"][0]["exc_type"]
    server_lines = [
        line
        for line in lines
        if str(line.get("event", "")).startswith(("Exception in ASGI", "Error handling request"))
    ]
    assert [] == server_lines


def _check_no_colour(service: Service, lines: list[dict[str, Any]]) -> None:
    assert [] == [line for line in lines if "color_message" in line]
    assert "\x1b" not in service.log.read_text()
    assert "\\u001b" not in service.log.read_text()


def _check_process_ids(lines: list[dict[str, Any]], started: str) -> set[int]:
    """Every line has a pid; a line announcing a process is written by that process."""
    assert [] == [line for line in lines if not isinstance(line.get("pid"), int)]
    for line in lines:
        event = str(line.get("event", ""))
        if event.startswith(started):
            announced = int(event.rsplit(" ", 1)[-1].strip("[]()"))
            assert announced == line["pid"], line
    return {int(line["pid"]) for line in lines}


@pytest.mark.slow
def test_uvicorn_two_workers_and_their_supervisor(tmp_path: Path) -> None:
    """uvicorn --workers 2 with obskit's server log configuration: every line of the supervisor
    and of both workers is JSON with its pid; a failed request is one line with its ids; no colour
    codes; a kept trace's flushed debug lines are the application's, not its libraries'."""
    argv = ("--workers", "2", "--log-config", server_logs.LOG_CONFIG_PATH)
    with serve("uvicorn", "logs_app:app", tmp_path, *argv, OTEL_SERVICE_NAME="logsvc") as service:
        _drive(service)
    lines = _json_lines(service)
    [parent] = [line for line in lines if str(line["event"]).startswith("Started parent process")]
    workers = {
        line["pid"] for line in lines if str(line["event"]).startswith("Started server process")
    }
    pids = _check_process_ids(lines, "Started ")
    assert 2 == len(workers)
    assert {parent["pid"], *workers} == pids
    assert {"logsvc"} == {line["service"] for line in lines}
    _check_failure_is_one_line_with_ids(lines)
    _check_no_colour(service, lines)
    chatty = [line for line in lines if line.get("correlation_id") == "chatty-1"]
    assert {"obskit.access", "logs_app"} == {line["logger"] for line in chatty}
    assert ["app detail"] == [line["event"] for line in chatty if line["level"] == "debug"]


@pytest.mark.slow
def test_uvicorn_defaults(tmp_path: Path) -> None:
    """uvicorn with no flags at all: one line per failure (uvicorn's own traceback line is gone),
    a pid on every line, no ``color_message``, no library debug lines in a kept trace."""
    with serve("uvicorn", "logs_app:app", tmp_path) as service:
        _drive(service)
    lines = _json_lines(service)
    _check_process_ids(lines, "Started server process")
    _check_failure_is_one_line_with_ids(lines)
    _check_no_colour(service, lines)
    chatty = [line for line in lines if line.get("correlation_id") == "chatty-1"]
    assert {"obskit.access", "logs_app"} == {line["logger"] for line in chatty}


@pytest.mark.slow
def test_uvicorn_traceback_line_gets_the_ids_when_obskit_writes_no_access_line(
    tmp_path: Path,
) -> None:
    """With obskit's access line off, uvicorn's own traceback line is the one line: it carries
    the request's correlation and trace ids."""
    with serve("uvicorn", "logs_app:app", tmp_path, OBSKIT_ACCESS_LOG="false") as service:
        assert 500 == _get(service, "/boom", "boom-2")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any("exception" in line for line in service.lines()):
                break
            time.sleep(0.05)
    lines = _json_lines(service)
    [failed] = [line for line in lines if "exception" in line]
    assert ("uvicorn.error", "boom-2") == (failed["logger"], failed["correlation_id"])
    assert 32 == len(failed["trace_id"])
    assert 16 == len(failed["span_id"])


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["app-in-workers", "preload"])
def test_gunicorn_workers_and_their_arbiter(tmp_path: Path, preload: bool) -> None:
    """gunicorn -w 2 with obskit's server log configuration: the arbiter and both workers write
    JSON, each line with its own pid (also in workers forked from an arbiter that ran init());
    a failed request is one line with its ids."""
    argv = ["-w", "2", "--log-config-json", server_logs.LOG_CONFIG_PATH]
    if preload:
        argv.append("--preload")
    with serve("gunicorn", "logs_wsgi:app", tmp_path, *argv) as service:
        _drive(service)
    lines = _json_lines(service)
    [arbiter] = [line for line in lines if str(line["event"]).startswith("Listening at:")]
    booted = [line for line in lines if str(line["event"]).startswith("Booting worker with pid")]
    pids = _check_process_ids(lines, "Booting worker with pid:")
    assert 2 == len(booted)
    assert {arbiter["pid"], *(line["pid"] for line in booted)} == pids
    access = [line for line in lines if line.get("logger") == "obskit.access"]
    assert arbiter["pid"] not in {line["pid"] for line in access}
    _check_failure_is_one_line_with_ids(lines)


def test_the_config_file_is_the_config() -> None:
    """The packaged log configuration file holds exactly :func:`log_config` (no drift)."""
    with open(server_logs.LOG_CONFIG_PATH) as handle:
        assert server_logs.log_config() == json.load(handle)


def test_the_log_config_handler_configures_obskit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler the configuration names sets up obskit's chain in a process that never called
    init() (a server's parent), with the service named by the environment."""
    import logging.config

    monkeypatch.setenv("OTEL_SERVICE_NAME", "parent-svc")
    logging.config.dictConfig(server_logs.log_config())
    with obskit.testing.capture_logs() as lines:
        logging.getLogger("uvicorn.error").info("Started parent process [%d]", 1)
    assert [("Started parent process [1]", "parent-svc")] == [
        (line["event"], line["service"]) for line in lines
    ]


def test_colour_copies_of_messages_are_dropped() -> None:
    """uvicorn's ``color_message`` (its message with ANSI codes) never reaches a JSON line."""
    with obskit.testing.isolated() as capture:
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]", 7, extra={"color_message": "[\x1b[36m%d\x1b[0m]"}
        )
    [line] = [json.loads(raw) for raw in capture.output_lines() if "Started" in raw]
    assert "Started server process [7]" == line["event"]
    assert "color_message" not in line
    assert "\\u001b" not in capture.output.getvalue().decode()


def test_trace_console_writes_json_in_a_json_stream() -> None:
    """``trace_console`` adds one JSON line per kept span to a JSON log stream, never plain text."""
    with obskit.testing.isolated(trace_console=True, log_format="json") as capture:
        with obskit.get_tracer().start_as_current_span("pay") as span:
            span.set_status(Status(StatusCode.ERROR))
        trace_id = f"{span.get_span_context().trace_id:032x}"
        assert obskit.testing.flush()
        raw = capture.output_lines()
    lines = [json.loads(text) for text in raw]  # every line is JSON
    [printed] = [line for line in lines if line["logger"] == "obskit.traces"]
    assert ("trace.span", "pay", trace_id) == (
        printed["event"],
        printed["span_name"],
        printed["trace_id"],
    )
    assert ("ERROR", "error", 1.0) == (printed["status"], printed["rule"], printed["weight"])


@pytest.fixture
def app_level() -> Iterator[logging.Logger]:
    """A chatty library's logger at a level the application chose (restored afterwards)."""
    logger = logging.getLogger("httpcore")
    logger.setLevel(logging.DEBUG)
    try:
        yield logger
    finally:
        logger.setLevel(logging.NOTSET)


class TestChattyLibraries:
    """Below-level lines of chatty libraries are never held for a trace, unless you say so."""

    def _kept_trace_lines(self, **settings: Any) -> list[str]:
        with obskit.testing.isolated(log_level="info", **settings) as capture:
            with obskit.get_tracer().start_as_current_span("request") as span:
                for name in CHATTY:
                    logging.getLogger(name).debug("%s internals", name)
                obskit.get_logger("app").debug("app detail")
                span.set_status(Status(StatusCode.ERROR))
            obskit.testing.flush()
            return [str(line["logger"]) for line in capture.logs if line["level"] == "debug"]

    def test_by_default_only_the_application_debug_lines_are_flushed(self) -> None:
        """A kept trace's flushed lines hold the application's debug line, none of httpcore,
        httpx, urllib3, hpack or asyncio."""
        assert ["app"] == self._kept_trace_lines()

    def test_an_empty_list_holds_every_library_line(self) -> None:
        """``log_quiet_loggers=()`` (``OBSKIT_LOG_QUIET_LOGGERS=``) holds them all again."""
        assert [*CHATTY, "app"] == self._kept_trace_lines(log_quiet_loggers=())

    def test_a_level_the_application_set_is_kept(self, app_level: logging.Logger) -> None:
        """A logger level set by the application wins (before init() here), and obskit gives
        back the ``NOTSET`` of those it changed when it shuts down."""
        lines = self._kept_trace_lines()
        assert ["httpcore.http11", "app"] == lines
        assert logging.DEBUG == app_level.level
        assert logging.NOTSET == logging.getLogger("urllib3").level
