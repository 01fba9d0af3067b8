"""OTEL_TRACES_EXPORTER: otlp, console and none are honoured; anything else is refused."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from obskit._config import ConfigError, load_settings
from obskit.tracing.export import build_exporters, otlp_traces_url


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for var in [v for v in os.environ if v.startswith(("OBSKIT_", "OTEL_"))]:
        monkeypatch.delenv(var)


def test_otlp_without_an_endpoint_exports_to_the_specification_default() -> None:
    """otlp alone: http://localhost:4318/v1/traces (http/protobuf) or :4317 (grpc)."""
    settings = load_settings({}, environ={"OTEL_TRACES_EXPORTER": "otlp"})
    assert "http://localhost:4318/v1/traces" == otlp_traces_url(settings)
    assert "OTEL_TRACES_EXPORTER" == settings.sources["otlp_endpoint"]
    grpc = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert "http://localhost:4317" == otlp_traces_url(load_settings({}, environ=grpc))


def test_otlp_keeps_a_configured_endpoint() -> None:
    """An endpoint that is set is the one used; the exporter variable only says 'OTLP'."""
    environ = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
    }
    settings = load_settings({}, environ=environ)
    assert "http://collector:4318/v1/traces" == otlp_traces_url(settings)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" == settings.sources["otlp_endpoint"]


def test_console_prints_kept_traces_and_keeps_the_local_file() -> None:
    """console: trace_console on; the exporters are the local file and the console."""
    settings = load_settings({}, environ={"OTEL_TRACES_EXPORTER": "console"})
    assert settings.trace_console
    assert "OTEL_TRACES_EXPORTER" == settings.sources["trace_console"]
    _, where = build_exporters(settings, write_line=lambda line: None)
    assert where.startswith("local file ")
    assert where.endswith(" and the console")


def test_console_without_otlp_drops_an_endpoint_from_the_otel_variables() -> None:
    """OTEL_TRACES_EXPORTER=console with OTEL_EXPORTER_OTLP_ENDPOINT: no OTLP export, said."""
    environ = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
    }
    settings = load_settings({}, environ=environ)
    assert settings.otlp_endpoint is None
    assert any(
        "endpoint from OTEL_EXPORTER_OTLP_ENDPOINT is not used" in n for n in settings.notices
    )


def test_otlp_and_console_together() -> None:
    """otlp,console: both, in any case and spacing."""
    settings = load_settings({}, environ={"OTEL_TRACES_EXPORTER": " OTLP , console "})
    assert (True, "http://localhost:4318") == (settings.trace_console, settings.otlp_endpoint)


def test_none_switches_tracing_off() -> None:
    """none: no spans and nothing exported (what OBSKIT_TRACING=false does)."""
    settings = load_settings({}, environ={"OTEL_TRACES_EXPORTER": "none"})
    assert settings.tracing is False
    assert "OTEL_TRACES_EXPORTER" == settings.sources["tracing"]


def test_obskit_own_settings_win_and_are_said_to() -> None:
    """A keyword argument or OBSKIT_* variable beats the exporter variable, with a notice."""
    settings = load_settings({"trace_console": False}, environ={"OTEL_TRACES_EXPORTER": "console"})
    assert settings.trace_console is False
    assert any("trace_console=False from the keyword argument wins" in n for n in settings.notices)
    settings = load_settings({}, environ={"OTEL_TRACES_EXPORTER": "none", "OBSKIT_TRACING": "true"})
    assert settings.tracing is True
    assert any("from OBSKIT_TRACING wins" in n for n in settings.notices)


def test_empty_is_unset() -> None:
    """An empty value is unset (the SDK specification's rule): the defaults stand."""
    settings = load_settings({}, environ={"OTEL_TRACES_EXPORTER": " "})
    assert (None, False, True) == (settings.otlp_endpoint, settings.trace_console, settings.tracing)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("zipkin", "OpenTelemetry Collector with a zipkin exporter"),
        ("jaeger", "Jaeger takes OTLP itself"),
        ("logging", "the old name of console"),
        ("prometheus", "not an exporter obskit knows"),
        ("none,otlp", "combines none with an exporter"),
    ],
)
def test_exporters_obskit_cannot_honour_are_a_config_error(value: str, fragment: str) -> None:
    """Each refusal names the variable, the value, why, and what is accepted."""
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={"OTEL_TRACES_EXPORTER": value})
    message = str(caught.value)
    assert "OTEL_TRACES_EXPORTER" in message
    assert fragment in message
    if "combines" not in fragment:
        assert "accepted: otlp, console, none" in message
