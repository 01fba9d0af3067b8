"""Bad configuration fails init() with a ConfigError naming the setting; nothing is left behind."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

import obskit
from conftest import subprocess_env
from obskit import _runtime
from obskit._config import ConfigError


@dataclass
class Machine:
    """What a failed init() must not change: logging, threads, collectors, files."""

    tmp: Path
    registry: CollectorRegistry
    handlers: list[logging.Handler]
    level: int
    threads: set[str]
    structlog_config: dict[str, Any]

    def assert_untouched(self) -> None:
        """Nothing of a failed init() remains."""
        root = logging.getLogger()
        assert self.handlers == root.handlers
        assert self.level == root.level
        assert self.structlog_config == structlog.get_config()
        assert self.threads == _obskit_threads()
        assert [] == list(self.registry._collector_to_names)
        assert [] == sorted(p.name for p in self.tmp.iterdir() if p.name != "given")


def _obskit_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("obskit")}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    """A private registry and temporary directory (obskit's default trace file goes there)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for var in [v for v in os.environ if v.startswith(("OBSKIT_", "OTEL_"))]:
        monkeypatch.delenv(var)
    root = logging.getLogger()
    return Machine(
        tmp_path,
        CollectorRegistry(),
        list(root.handlers),
        root.level,
        _obskit_threads(),
        dict(structlog.get_config()),
    )


def _a_file(machine: Machine) -> str:
    """A regular file, so that any path beneath it can never be created."""
    given = machine.tmp / "given"
    given.write_text("a file, not a directory")
    return str(given)


# (setting named in the message, environment, keyword arguments, fragment of the message)
CASES: list[tuple[str, dict[str, str], dict[str, Any], str]] = [
    ("request_id_headers", {"OBSKIT_REQUEST_ID_HEADERS": "x request id"}, {}, "RFC 9110"),
    ("request_id_headers", {"OBSKIT_REQUEST_ID_HEADERS": "x-request-id,x-请求"}, {}, "x-请求"),
    ("request_id_headers", {}, {"request_id_headers": ["x-request-id", "bad:name"]}, "bad:name"),
    ("tenant_header", {"OBSKIT_TENANT_HEADER": "x tenant"}, {}, "not an HTTP header name"),
    ("tenant_header", {"OBSKIT_TENANT_HEADER": "x-租户"}, {}, "RFC 9110"),
    ("otlp_endpoint", {"OTEL_EXPORTER_OTLP_ENDPOINT": "not a url"}, {}, "not a URL"),
    ("otlp_endpoint", {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:4318"}, {}, "'ftp'"),
    (
        "otlp_endpoint",
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
        {},
        "did you mean 'http://localhost:4318'?",
    ),
    (
        "otlp_endpoint",
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:99999/v1/traces"},
        {},
        "port",
    ),
    ("metrics_addr", {}, {"metrics_port": 0, "metrics_addr": "not an address"}, "host name"),
    # TEST-NET-1 (RFC 5737): never an address of this machine.
    ("metrics_addr", {}, {"metrics_port": 0, "metrics_addr": "192.0.2.1"}, "not an address of"),
    ("registry", {}, {"registry": "x"}, "prometheus_client.CollectorRegistry"),
    ("span_exporter", {}, {"span_exporter": object()}, "SpanExporter"),
    ("tenant_from", {}, {"tenant_from": "x-tenant"}, "callable"),
]


@pytest.mark.parametrize(("setting", "environ", "kwargs", "fragment"), CASES)
def test_bad_setting_fails_init_and_leaves_nothing(
    machine: Machine,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    environ: dict[str, str],
    kwargs: dict[str, Any],
    fragment: str,
) -> None:
    """Each bad value is a ConfigError at init() naming the setting; nothing is wired."""
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    kwargs = {"registry": machine.registry, **kwargs}
    with pytest.raises(ConfigError) as info:
        _runtime.init(**kwargs)
    message = str(info.value)
    assert repr(setting) in message
    assert fragment in message
    assert "accepted" in message or "must be" in message
    assert {"initialized": False} == obskit.doctor()
    machine.assert_untouched()


def test_unwritable_trace_sink_fails_init(machine: Machine) -> None:
    """A trace file obskit cannot create is refused at init(), not counted as failed exports."""
    sink = os.path.join(_a_file(machine), "traces.jsonl")
    with pytest.raises(ConfigError, match=r"'trace_sink' \(keyword argument\).*not a directory"):
        obskit.init(trace_sink=sink, registry=machine.registry)
    machine.assert_untouched()


def test_trace_sink_that_is_a_directory_fails_init(machine: Machine) -> None:
    """A directory given as the trace file is refused."""
    with pytest.raises(ConfigError, match=r"'trace_sink'.*is a directory"):
        obskit.init(trace_sink=str(machine.tmp), registry=machine.registry)
    machine.assert_untouched()


def test_default_trace_sink_in_an_unusable_directory_fails_init(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no endpoint and no trace_sink, the default file's directory is checked too."""
    monkeypatch.setattr(tempfile, "tempdir", os.path.join(_a_file(machine), "tmp"))
    with pytest.raises(ConfigError, match="'trace_sink' \\(default\\)") as info:
        obskit.init(registry=machine.registry)
    assert "set OBSKIT_TRACE_SINK to a writable file" in str(info.value)
    machine.assert_untouched()


def test_unwritable_multiprocess_dir_fails_init(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-process directory that cannot be created is refused; metrics are not dropped."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", os.path.join(_a_file(machine), "mp"))
    with pytest.raises(ConfigError, match=r"'multiprocess_dir' .*PROMETHEUS_MULTIPROC_DIR"):
        obskit.init(registry=machine.registry)
    machine.assert_untouched()


def test_multiprocess_dir_that_is_a_file_fails_init(machine: Machine) -> None:
    """A regular file given as the multi-process directory is refused."""
    with pytest.raises(ConfigError, match=r"'multiprocess_dir'.*not a directory"):
        obskit.init(multiprocess_dir=_a_file(machine), registry=machine.registry)
    machine.assert_untouched()


def test_metrics_port_in_use_fails_init(machine: Machine) -> None:
    """A port another process listens on fails init() instead of a warning and no server."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"'metrics_port'.*{port}.*already listens"):
            obskit.init(metrics_port=port, registry=machine.registry)
    machine.assert_untouched()


def test_a_failed_init_keeps_the_previous_runtime(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a good init(), a bad one raises and the first runtime keeps working unchanged."""
    obskit.init(service_name="first", registry=machine.registry, log_stream="stderr")
    first = _runtime.current()
    handlers = list(logging.getLogger().handlers)

    @obskit.red
    def work() -> None:
        return None

    work()
    threads = _obskit_threads()
    monkeypatch.setenv("OBSKIT_REQUEST_ID_HEADERS", "x request id")
    with pytest.raises(ConfigError, match="request_id_headers"):
        obskit.init(log_level="debug")
    assert first is _runtime.current()
    assert "first" == obskit.doctor()["settings"]["service_name"]
    assert "info" == obskit.doctor()["settings"]["log_level"]
    assert handlers == logging.getLogger().handlers
    assert threads == _obskit_threads()
    work()
    calls = machine.registry.get_sample_value(
        "obskit_function_calls_total",
        {"function": work.__qualname__, "module": __name__, "result": "ok", "error_type": ""},
    )
    assert 2.0 == calls


def test_a_setting_unusable_only_while_building_undoes_everything(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ConfigError from a part's builder tears down the parts built before it, logging too."""

    def build(runtime: _runtime.Runtime) -> None:
        raise ConfigError("obskit setting 'x' cannot be used here")

    monkeypatch.setattr(
        _runtime, "BUILDERS", (*_runtime.BUILDERS, _runtime.Part("failing", build, frozenset()))
    )
    with pytest.raises(ConfigError, match="cannot be used here"):
        obskit.init(metrics_port=0, registry=machine.registry)
    assert _runtime.current() is None
    machine.assert_untouched()


def test_nonsense_propagators_fail_init_in_a_fresh_process(tmp_path: Path) -> None:
    """OTEL_PROPAGATORS=nonsense is a ConfigError naming it, not tracing silently absent."""
    code = "import obskit\nobskit.init()\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(OTEL_PROPAGATORS="tracecontext,nonsense", TMPDIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 != result.returncode
    assert "obskit.ConfigError" in result.stderr or "ConfigError" in result.stderr
    assert "OTEL_PROPAGATORS names 'nonsense'" in result.stderr
    assert "tracecontext" in result.stderr.rsplit("accepted:", 1)[1]


def test_known_propagators_are_accepted(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed propagator names and none pass the check."""
    for value in ("tracecontext,baggage", "none", " tracecontext "):
        monkeypatch.setenv("OTEL_PROPAGATORS", value)
        obskit.init(registry=machine.registry, log_stream="stderr")
        obskit.shutdown()
