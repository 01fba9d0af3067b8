"""Settings: keyword arguments over environment over defaults, validated once in init()."""

from __future__ import annotations

import pytest

import obskit
from obskit._config import SPECS, ConfigError, load_settings


class TestPrecedence:
    def test_defaults_without_kwargs_or_environment(self) -> None:
        """With nothing set, every setting takes its declared default."""
        settings = load_settings({}, environ={})
        assert "unknown_service" == settings.service_name
        assert "info" == settings.log_level
        assert 0.01 == settings.baseline_ratio
        assert "default" == settings.sources["log_level"]

    def test_environment_over_default(self) -> None:
        """An environment variable replaces the default and is named as the source."""
        settings = load_settings({}, environ={"OBSKIT_LOG_LEVEL": "DEBUG"})
        assert "debug" == settings.log_level
        assert "OBSKIT_LOG_LEVEL" == settings.sources["log_level"]

    def test_keyword_over_environment(self) -> None:
        """A keyword argument wins over the environment."""
        settings = load_settings(
            {"service_name": "kw"}, environ={"OTEL_SERVICE_NAME": "env", "OBSKIT_SERVICE_NAME": "x"}
        )
        assert "kw" == settings.service_name

    def test_otel_service_name_first(self) -> None:
        """OTEL_SERVICE_NAME is honoured before obskit's own variable."""
        environ = {"OTEL_SERVICE_NAME": "otel", "OBSKIT_SERVICE_NAME": "own"}
        assert "otel" == load_settings({}, environ=environ).service_name

    def test_resource_attributes_fill_identity(self) -> None:
        """Service name, version and environment can come from OTEL_RESOURCE_ATTRIBUTES."""
        environ = {
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=a%20b,service.version=1.2,"
            "deployment.environment.name=prod,team=core"
        }
        settings = load_settings({}, environ=environ)
        assert ("a b", "1.2", "prod") == (
            settings.service_name,
            settings.service_version,
            settings.environment,
        )
        assert "core" == settings.resource_attributes["team"]

    def test_lists_parse_from_commas(self) -> None:
        """List settings accept comma-separated text and normalise case and blanks."""
        settings = load_settings({}, environ={"OBSKIT_REDACT_KEYS": " Card_Number, ,pin "})
        assert ("card_number", "pin") == settings.redact_keys

    def test_collectors_all_and_none(self) -> None:
        """'none' turns every collector off; 'all' turns every one on."""
        assert () == load_settings({"collectors": "none"}, environ={}).collectors
        assert "gc" in load_settings({"collectors": "all"}, environ={}).collectors


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "environ", "fragment"),
        [
            ({"log_level": "loud"}, {}, "'log_level' (keyword argument) has invalid value 'loud'"),
            ({}, {"OBSKIT_BASELINE_RATIO": "1.5"}, "environment variable OBSKIT_BASELINE_RATIO"),
            ({}, {"OBSKIT_BASELINE_RATIO": "nan"}, "accepted: 0.0-1.0"),
            ({}, {"OTEL_SDK_DISABLED": "maybe"}, "accepted: true/false"),
            ({"metrics_port": 70000}, {}, "accepted: 0-65535 or none"),
            ({"max_traces": True}, {}, "'max_traces'"),
            ({}, {"OBSKIT_COLLECTORS": "gc,disk"}, "accepted: all, none, or a comma list"),
            ({}, {"OBSKIT_KEEP_RULES": "tenant_id"}, "accepted: attr=value pairs"),
            ({"service_name": "a\nb"}, {}, "'service_name'"),
            ({}, {"OBSKIT_LOG_FORMAT": "xml"}, "accepted: auto, json, console"),
        ],
    )
    def test_bad_value_names_setting_value_and_accepted(
        self, kwargs: dict[str, object], environ: dict[str, str], fragment: str
    ) -> None:
        """A bad value fails with a message naming the setting, the value and what is accepted."""
        with pytest.raises(ConfigError) as info:
            load_settings(kwargs, environ=environ)
        assert fragment in str(info.value)

    def test_unknown_keyword_is_refused(self) -> None:
        """A misspelt keyword is an error listing the known settings, not silently ignored."""
        with pytest.raises(ConfigError, match=r"unknown setting.*'log_levle'"):
            load_settings({"log_levle": "debug"}, environ={})

    def test_callable_settings_must_be_callable(self) -> None:
        """tenant_from must be a callable."""
        with pytest.raises(ConfigError, match="tenant_from"):
            load_settings({"tenant_from": "x-tenant"}, environ={})

    def test_init_fails_on_bad_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """init() itself raises ConfigError for a bad environment variable, before wiring."""
        monkeypatch.setenv("OBSKIT_LOG_LEVEL", "verbose")
        with pytest.raises(obskit.ConfigError, match="OBSKIT_LOG_LEVEL"):
            obskit.init()
        assert {"initialized": False} == obskit.doctor()

    def test_every_spec_documents_itself(self) -> None:
        """Every setting has an environment variable, an accepted-values text and a description."""
        for spec in SPECS:
            assert all((spec.env, spec.accepted, spec.doc)), spec.name


class TestInit:
    def test_idempotent(self) -> None:
        """A second init() with the same settings keeps the same runtime."""
        from obskit import _runtime

        obskit.init(service_name="svc", log_stream="stderr")
        first = _runtime.current()
        obskit.init(service_name="svc", log_stream="stderr")
        assert first is _runtime.current()

    def test_reconfigure_says_what_changed(self) -> None:
        """init() with other settings rebuilds the runtime and logs the changed names."""
        from obskit import _runtime, testing

        obskit.init(service_name="svc", log_stream="stderr")
        first = _runtime.current()
        with testing.capture_logs() as lines:
            obskit.init(service_name="svc", log_level="debug", log_stream="stderr")
        assert first is not _runtime.current()
        warnings = [line for line in lines if line["event"].startswith("obskit reconfigured")]
        assert 1 == len(warnings)
        assert "log_level" in warnings[0]["event"]

    def test_doctor_reports_sources(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """doctor() shows each effective value and where it came from."""
        monkeypatch.setenv("OBSKIT_ENVIRONMENT", "staging")
        obskit.init(service_name="svc", log_stream="stderr")
        report = obskit.doctor()
        assert "staging" == report["settings"]["environment"]
        assert "OBSKIT_ENVIRONMENT" == report["sources"]["environment"]
        assert "kwarg" == report["sources"]["service_name"]
        assert "local file" in report["wired"]["traces"]
        assert "stderr" == report["wired"]["logs"]
