"""``obskit collector-config`` prints a Collector configuration mirroring the sampling policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from obskit import cli
from obskit._config import load_settings
from obskit._yaml import dump
from obskit.tracing.collector_config import collector_config


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert 0 == cli.main(["collector-config", *args])
    return capsys.readouterr().out


def _policies(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in config["processors"]["tail_sampling"]["policies"]}


def test_yaml_parses_with_the_policies_of_the_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The YAML has trace-id load balancing and tail_sampling policies equal to the settings."""
    monkeypatch.setenv("OBSKIT_SLOW_THRESHOLD_MS", "250")
    monkeypatch.setenv("OBSKIT_BASELINE_RATIO", "0.05")
    monkeypatch.setenv("OBSKIT_KEEP_RULES", "tenant_id=acme")
    config = yaml.safe_load(_run(capsys))
    assert "traceID" == config["exporters"]["loadbalancing"]["routing_key"]
    policies = _policies(config)
    assert ["ERROR"] == policies["errors"]["status_code"]["status_codes"]
    assert 500 == policies["server-5xx"]["numeric_attribute"]["min_value"]
    assert 250 == policies["slow"]["latency"]["threshold_ms"]
    assert 5.0 == policies["baseline"]["probabilistic"]["sampling_percentage"]
    rule = policies["keep-tenant_id-acme"]
    assert ("string_attribute", "tenant_id", ["acme"]) == (
        rule["type"],
        rule["string_attribute"]["key"],
        rule["string_attribute"]["values"],
    )
    pipelines = config["service"]["pipelines"]
    assert ["loadbalancing"] == pipelines["traces/route-by-trace-id"]["exporters"]
    assert "tail_sampling" in pipelines["traces/tail-sample"]["processors"]


def test_json_format_matches_the_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    """--format json prints the same configuration as the YAML."""
    as_json = json.loads(_run(capsys, "--format", "json"))
    as_yaml = yaml.safe_load(_run(capsys))
    assert as_yaml == as_json


def test_emitter_round_trips_awkward_strings() -> None:
    """Colons, quotes, hashes and non-ASCII in values survive the dependency-free YAML emitter."""
    settings = load_settings({"keep_rules": {"http.route": '/a: "b" # c', "tenant": "ünï"}})
    data = collector_config(settings)
    assert data == yaml.safe_load(dump(data))


def test_bad_setting_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid sampling setting in the environment is reported and exits with status 2."""
    monkeypatch.setenv("OBSKIT_BASELINE_RATIO", "2")
    assert 2 == cli.main(["collector-config"])
    assert "OBSKIT_BASELINE_RATIO" in capsys.readouterr().err
