"""OTEL_TRACES_SAMPLER and _ARG: honoured where they map onto tail sampling, refused elsewhere."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import obskit
import obskit.testing
from obskit._config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for var in [v for v in os.environ if v.startswith(("OBSKIT_", "OTEL_"))]:
        monkeypatch.delenv(var)


@pytest.mark.parametrize(
    ("environ", "sampling", "ratio", "source"),
    [
        ({"OTEL_TRACES_SAMPLER": "always_on"}, "all", 0.01, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "all", 0.01, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio"}, "tail", 1.0, "OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            "tail",
            0.25,
            "OTEL_TRACES_SAMPLER",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
            "tail",
            0.0,
            "OTEL_TRACES_SAMPLER",
        ),
        ({"OTEL_TRACES_SAMPLER": ""}, "tail", 0.01, "default"),
    ],
)
def test_sampler_maps_onto_obskit_sampling(
    environ: dict[str, str], sampling: str, ratio: float, source: str
) -> None:
    """Each mappable sampler sets sampling and baseline_ratio, and is named as their source."""
    settings = load_settings({}, environ=environ)
    assert (sampling, ratio) == (settings.sampling, settings.baseline_ratio)
    assert source == settings.sources["sampling"]
    if "OTEL_TRACES_SAMPLER_ARG" in environ:
        assert "OTEL_TRACES_SAMPLER_ARG" == settings.sources["baseline_ratio"]


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"OTEL_TRACES_SAMPLER": "always_off"}, "OBSKIT_TRACING=false"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, "OBSKIT_BASELINE_RATIO=0"),
        ({"OTEL_TRACES_SAMPLER": "xray"}, "X-Ray"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "remote sampling"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "accepted: always_on, parentbased_always_on"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
            "OTEL_TRACES_SAMPLER_ARG has invalid value 'half'",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "a probability from 0.0 to 1.0",
        ),
        ({"OTEL_TRACES_SAMPLER_ARG": "0.1"}, "set without OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "no meaning for OTEL_TRACES_SAMPLER=always_on",
        ),
    ],
)
def test_sampler_obskit_cannot_honour_fails_init(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], fragment: str
) -> None:
    """A sampler or argument without an obskit meaning is a ConfigError, never ignored."""
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        obskit.init(registry=CollectorRegistry())
    assert fragment in str(info.value)
    assert {"initialized": False} == obskit.doctor()


def test_obskit_settings_win_and_the_override_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """OBSKIT_SAMPLING beats OTEL_TRACES_SAMPLER, and init() logs that it did."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    monkeypatch.setenv("OBSKIT_SAMPLING", "tail")
    with obskit.testing.capture_logs() as lines:
        obskit.init(registry=CollectorRegistry(), log_stream="stderr")
    assert "tail" == obskit.doctor()["settings"]["sampling"]
    notices = [line["event"] for line in lines if "OTEL_TRACES_SAMPLER" in line["event"]]
    assert [
        "obskit: OTEL_TRACES_SAMPLER=always_on would set sampling='all'; "
        "sampling='tail' from OBSKIT_SAMPLING wins"
    ] == notices


def _kept_traces(count: int) -> int:
    @obskit.red
    def ordinary() -> None:
        return None

    with obskit.testing.capture_spans() as spans:
        for _ in range(count):
            ordinary()
        obskit.testing.flush()
    return len({span.context.trace_id for span in spans if span.context is not None})


def test_always_on_keeps_every_ordinary_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_TRACES_SAMPLER=always_on, 40 ordinary traces are all kept (1% by default)."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    obskit.init(registry=CollectorRegistry(), log_stream="stderr")
    assert 40 == _kept_traces(40)


def test_ratio_zero_keeps_no_ordinary_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    """traceidratio with ARG 0 keeps no ordinary trace; the ratio reaches the tail sampler."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    obskit.init(registry=CollectorRegistry(), log_stream="stderr")
    assert 0 == _kept_traces(40)
