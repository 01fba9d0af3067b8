"""Settings: keyword arguments, then environment variables, then defaults; validated once.

Every setting is declared once in ``SPECS`` with its environment variable, default, parser and a
one-line description. The documentation's configuration reference and ``obskit.init()``'s typed
signature are generated from this table (``scripts/config_reference.py``; the tests check both).
A bad value raises :class:`ConfigError` naming the setting, the value and what is accepted; a
mistyped keyword gets the nearest setting's name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from obskit import _suggest as suggest
from obskit._identity import distribution_version
from obskit._objects import OBJECTS, ObjectSpec
from obskit._parsers import Parser, kind_of, typed
from obskit._parsers import parse_address as _address
from obskit._parsers import parse_bool as _bool
from obskit._parsers import parse_choice as _choice
from obskit._parsers import parse_header as _header
from obskit._parsers import parse_header_names as _header_names
from obskit._parsers import parse_level as _level
from obskit._parsers import parse_logger_names as _logger_names
from obskit._parsers import parse_names as _names
from obskit._parsers import parse_number as _number
from obskit._parsers import parse_optional as _optional
from obskit._parsers import parse_paths as _paths
from obskit._parsers import parse_resource as _resource
from obskit._parsers import parse_rules as _rules
from obskit._parsers import parse_text as _text
from obskit._parsers import parse_url as _url

__all__ = [
    "OBJECTS",
    "SPECS",
    "ConfigError",
    "ObjectSpec",
    "SettingSpec",
    "Settings",
    "load_settings",
]


class ConfigError(ValueError):
    """A setting had a value obskit cannot accept; raised by ``init()`` only."""


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    """One setting: its keyword, environment variables (first found wins), default and parser."""

    name: str
    env: tuple[str, ...]
    default: Any
    parse: Parser
    accepted: str
    doc: str
    # How the reference shows a default that is worked out at init() (empty: ``default`` itself).
    default_doc: str = ""

    @property
    def kind(self) -> str | None:
        """The type of the keyword argument in ``init()``'s signature (from the parser)."""
        return kind_of(self.parse)


# The revision a build was made from: obskit's own variable, then the variables CI systems and
# platforms set (GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins, Travis CI, Bitbucket
# Pipelines, Drone, Azure Pipelines, AWS CodeBuild, Heroku builds, Vercel, Render).
VCS_REVISION_ENV = (
    "OBSKIT_VCS_REVISION",
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "BUILDKITE_COMMIT",
    "CIRCLE_SHA1",
    "GIT_COMMIT",
    "TRAVIS_COMMIT",
    "BITBUCKET_COMMIT",
    "DRONE_COMMIT_SHA",
    "BUILD_SOURCEVERSION",
    "CODEBUILD_RESOLVED_SOURCE_VERSION",
    "SOURCE_VERSION",
    "VERCEL_GIT_COMMIT_SHA",
    "RENDER_GIT_COMMIT",
)

COLLECTORS = ("process", "cgroup", "event_loop", "gc", "executors", "pools")


def _collectors(value: Any) -> tuple[str, ...]:
    names = _names(value)
    unknown = set(names) - set(COLLECTORS) - {"all", "none"}
    if unknown:
        raise ValueError
    if "none" in names:
        return ()
    if "all" in names:
        return COLLECTORS
    return names


typed("str | Sequence[str]", _collectors)


SPECS: tuple[SettingSpec, ...] = (
    # --- identity ---
    SettingSpec(
        "service_name",
        ("OTEL_SERVICE_NAME", "OBSKIT_SERVICE_NAME"),
        "unknown_service",
        _text(),
        "text",
        "Service name on every signal (service.name).",
        "unknown_service (or service.name in OTEL_RESOURCE_ATTRIBUTES)",
    ),
    SettingSpec(
        "service_version",
        ("OBSKIT_SERVICE_VERSION",),
        "0.0.0",
        _text(),
        "text",
        "Service version (service.version).",
        "service.version in OTEL_RESOURCE_ATTRIBUTES, else the version of an installed "
        "distribution named service_name, else 0.0.0",
    ),
    SettingSpec(
        "environment",
        ("OBSKIT_ENVIRONMENT",),
        "dev",
        _text(),
        "text",
        "Deployment environment (deployment.environment.name).",
        "dev (or deployment.environment.name in OTEL_RESOURCE_ATTRIBUTES)",
    ),
    SettingSpec(
        "vcs_revision",
        VCS_REVISION_ENV,
        None,
        _optional(_text(128)),
        "text (a commit id)",
        "Source revision deployed (vcs.ref.head.revision); CI variables are read when unset.",
    ),
    SettingSpec(
        "resource_attributes",
        ("OTEL_RESOURCE_ATTRIBUTES",),
        {},
        _resource,
        "key=value pairs, comma-separated",
        "Extra OpenTelemetry resource attributes.",
    ),
    SettingSpec(
        "disabled",
        ("OTEL_SDK_DISABLED", "OBSKIT_DISABLED"),
        False,
        _bool,
        "true/false",
        "Make obskit a no-op: nothing is configured, decorators pass through.",
    ),
    # --- logs ---
    SettingSpec(
        "log_level",
        ("OBSKIT_LOG_LEVEL",),
        "info",
        _level,
        "debug, info, warning, error, critical",
        "Lowest level written out.",
    ),
    SettingSpec(
        "log_format",
        ("OBSKIT_LOG_FORMAT",),
        "auto",
        _choice("auto", "json", "console"),
        "auto, json, console",
        "auto: console on a terminal, JSON lines otherwise.",
    ),
    SettingSpec(
        "log_stream",
        ("OBSKIT_LOG_STREAM",),
        "stdout",
        _choice("stdout", "stderr"),
        "stdout, stderr",
        "Where log lines are written.",
    ),
    SettingSpec(
        "configure_logging",
        ("OBSKIT_CONFIGURE_LOGGING",),
        True,
        _bool,
        "true/false",
        "Own structlog and the stdlib root logger; false leaves them to the application.",
    ),
    SettingSpec(
        "redact",
        ("OBSKIT_REDACT",),
        True,
        _bool,
        "true/false",
        "Redact secrets (authorization, cookie, password, token, ...) from every signal.",
    ),
    SettingSpec(
        "redact_keys",
        ("OBSKIT_REDACT_KEYS",),
        (),
        _names,
        "comma-separated keys",
        "Extra keys to redact, on top of the built-in list.",
    ),
    SettingSpec(
        "max_value_length",
        ("OBSKIT_MAX_VALUE_LENGTH",),
        4096,
        _number(int, 256, 1 << 20),
        "256-1048576",
        "Longest text (in characters) any value carries in a log line, span or access line; "
        "longer values are cut, marked and counted.",
    ),
    SettingSpec(
        "log_buffer_level",
        ("OBSKIT_LOG_BUFFER_LEVEL",),
        "debug",
        _optional(_level),
        "debug, info, ..., or none",
        "Lines at this level and up, below log_level, are held per trace and written "
        "only if the trace is kept.",
    ),
    SettingSpec(
        "log_quiet_loggers",
        ("OBSKIT_LOG_QUIET_LOGGERS",),
        (
            "asyncio",
            "botocore",
            "charset_normalizer",
            "h11",
            "h2",
            "hpack",
            "httpcore",
            "httpx",
            "multipart",
            "s3transfer",
            "urllib3",
            "watchfiles",
        ),
        _logger_names,
        "comma-separated logger names (empty: none)",
        "Chatty libraries held at log_level: their debug lines are never held for a trace. "
        "A level you set on one of these loggers yourself is kept.",
    ),
    # --- metrics ---
    SettingSpec(
        "metrics",
        ("OBSKIT_METRICS",),
        True,
        _bool,
        "true/false",
        "Record RED metrics and register obskit's collectors.",
    ),
    SettingSpec(
        "metrics_port",
        ("OBSKIT_METRICS_PORT",),
        None,
        _optional(_number(int, 0, 65535)),
        "0-65535 or none",
        "Start a /metrics HTTP server on this port at init().",
    ),
    SettingSpec(
        "metrics_addr",
        ("OBSKIT_METRICS_ADDR",),
        "127.0.0.1",
        _address,
        "an IP address or host name of this machine (0.0.0.0 or :: for all)",
        "Address the metrics server binds.",
    ),
    SettingSpec(
        "multiprocess_dir",
        ("OBSKIT_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR"),
        None,
        _optional(_text(4096)),
        "a directory path",
        "Where worker processes share metric files (managed automatically when unset).",
    ),
    SettingSpec(
        "label_top_k",
        ("OBSKIT_LABEL_TOP_K",),
        20,
        _number(int, 1, 10_000),
        "1-10000",
        "Distinct values kept per guarded label (tenant, user); the rest are __other__.",
    ),
    SettingSpec(
        "label_allow",
        ("OBSKIT_LABEL_ALLOW",),
        (),
        _names,
        "comma-separated values",
        "Guarded label values always kept as themselves.",
    ),
    SettingSpec(
        "exemplars",
        ("OBSKIT_EXEMPLARS",),
        True,
        _bool,
        "true/false",
        "Attach the trace id of kept traces to metric observations.",
    ),
    SettingSpec(
        "collectors",
        ("OBSKIT_COLLECTORS",),
        COLLECTORS,
        _collectors,
        "all, none, or a comma list of " + ", ".join(COLLECTORS),
        "USE collectors registered by init().",
    ),
    # --- traces ---
    SettingSpec(
        "tracing",
        ("OBSKIT_TRACING",),
        True,
        _bool,
        "true/false",
        "Create spans (decorator and middleware) and run the tail sampler.",
    ),
    SettingSpec(
        "sampling",
        ("OBSKIT_SAMPLING",),
        "tail",
        _choice("tail", "collector", "all"),
        "tail, collector, all",
        "tail: decide in process; collector: export every span for a Collector to decide; "
        "all: keep everything.",
    ),
    SettingSpec(
        "baseline_ratio",
        ("OBSKIT_BASELINE_RATIO",),
        0.01,
        _number(float, 0.0, 1.0),
        "0.0-1.0",
        "Share of ordinary (not errored, not slow) traces kept.",
    ),
    SettingSpec(
        "slow_threshold_ms",
        ("OBSKIT_SLOW_THRESHOLD_MS",),
        1000.0,
        _number(float, 1.0, 3_600_000.0),
        "1-3600000",
        "A trace or span slower than this is kept.",
    ),
    SettingSpec(
        "slow_per_route",
        ("OBSKIT_SLOW_PER_ROUTE",),
        False,
        _bool,
        "true/false",
        "Also keep traces slower than their route's live p99 latency.",
    ),
    SettingSpec(
        "keep_rules",
        ("OBSKIT_KEEP_RULES",),
        (),
        _rules,
        "attr=value pairs",
        "Keep every trace with a span attribute equal to the value.",
    ),
    SettingSpec(
        "trace_timeout_s",
        ("OBSKIT_TRACE_TIMEOUT_S",),
        30.0,
        _number(float, 0.1, 3600.0),
        "0.1-3600",
        "A trace whose local root has not ended after this is decided.",
    ),
    SettingSpec(
        "max_traces",
        ("OBSKIT_MAX_TRACES",),
        10_000,
        _number(int, 10, 10_000_000),
        "10-10000000",
        "Undecided traces held at once.",
    ),
    SettingSpec(
        "max_spans_per_trace",
        ("OBSKIT_MAX_SPANS_PER_TRACE",),
        1_000,
        _number(int, 1, 1_000_000),
        "1-1000000",
        "Spans held for one undecided trace.",
    ),
    SettingSpec(
        "max_buffer_bytes",
        ("OBSKIT_MAX_BUFFER_BYTES",),
        64 * 1024 * 1024,
        _number(int, 1024, 1 << 40),
        "1024-2^40",
        "Estimated bytes of held spans.",
    ),
    SettingSpec(
        "otlp_endpoint",
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        None,
        _optional(_url),
        "an http:// or https:// URL",
        "Export kept spans over OTLP to this endpoint.",
    ),
    SettingSpec(
        "otlp_protocol",
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        "http/protobuf",
        _choice("http/protobuf", "grpc"),
        "http/protobuf, grpc",
        "OTLP transport.",
    ),
    SettingSpec(
        "trace_sink",
        ("OBSKIT_TRACE_SINK",),
        None,
        _optional(_text(4096)),
        "a writable file path",
        "Local JSON-lines file of kept spans when no endpoint is set.",
        "<tmp>/obskit-<service_name>-traces.jsonl",
    ),
    SettingSpec(
        "trace_console",
        ("OBSKIT_TRACE_CONSOLE",),
        False,
        _bool,
        "true/false",
        "Also print kept traces to the log stream.",
    ),
    # --- HTTP ---
    SettingSpec(
        "request_id_headers",
        ("OBSKIT_REQUEST_ID_HEADERS",),
        ("x-request-id", "x-correlation-id"),
        _header_names,
        "comma-separated HTTP header names (RFC 9110 tokens)",
        "Inbound headers read for the correlation id (the first is echoed).",
    ),
    SettingSpec(
        "tenant_header",
        ("OBSKIT_TENANT_HEADER",),
        "x-tenant-id",
        _optional(_header),
        "an HTTP header name (RFC 9110 token) or none",
        "Inbound header carrying the tenant id.",
    ),
    SettingSpec(
        "access_log",
        ("OBSKIT_ACCESS_LOG",),
        True,
        _bool,
        "true/false",
        "One JSON access-log line per request (replaces the server's own).",
    ),
    SettingSpec(
        "exclude",
        ("OBSKIT_EXCLUDE",),
        ("/metrics",),
        _paths,
        "comma-separated paths or route templates (each starting with /), or none",
        "Requests kept out of RED, traces and the access log: probes, scrapes. A path matches "
        "exactly (one trailing slash aside); a template (/probe/{name}) matches the route the "
        "framework matched.",
    ),
)

_SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated, effective configuration. Built by :func:`load_settings`."""

    service_name: str
    service_version: str
    environment: str
    vcs_revision: str | None
    resource_attributes: dict[str, str]
    disabled: bool
    log_level: str
    log_format: str
    log_stream: str
    configure_logging: bool
    redact: bool
    redact_keys: tuple[str, ...]
    max_value_length: int
    log_buffer_level: str | None
    log_quiet_loggers: tuple[str, ...]
    metrics: bool
    metrics_port: int | None
    metrics_addr: str
    multiprocess_dir: str | None
    label_top_k: int
    label_allow: tuple[str, ...]
    exemplars: bool
    collectors: tuple[str, ...]
    tracing: bool
    sampling: str
    baseline_ratio: float
    slow_threshold_ms: float
    slow_per_route: bool
    keep_rules: tuple[tuple[str, str], ...]
    trace_timeout_s: float
    max_traces: int
    max_spans_per_trace: int
    max_buffer_bytes: int
    otlp_endpoint: str | None
    otlp_protocol: str
    trace_sink: str | None
    trace_console: bool
    request_id_headers: tuple[str, ...]
    tenant_header: str | None
    access_log: bool
    exclude: tuple[str, ...]
    # Where each value came from ("kwarg", an environment variable's name, or "default").
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)
    # Objects that cannot come from the environment (registries, callables).
    extras: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    # What init() should say about the configuration: overridden or mistyped variables.
    notices: tuple[str, ...] = dataclasses.field(default=(), compare=False)


_OBJECT_BY_NAME = {spec.name: spec for spec in OBJECTS}
_OBJECT_KWARGS = tuple(_OBJECT_BY_NAME)


def _is_set(var: str, env: Mapping[str, str]) -> bool:
    """Whether ``var`` counts as set: OpenTelemetry's variables are unset when empty."""
    if var not in env:
        return False
    return bool(env[var].strip()) or not var.startswith("OTEL_")


def load_settings(kwargs: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge keyword arguments over environment variables over defaults, validating each value."""
    from obskit import _otel_env

    env = os.environ if environ is None else environ
    unknown = set(kwargs) - set(_SPEC_BY_NAME) - set(_OBJECT_KWARGS)
    if unknown:
        raise ConfigError(suggest.unknown_keywords(unknown, [*_SPEC_BY_NAME, *_OBJECT_KWARGS]))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        if spec.name in kwargs and kwargs[spec.name] is not None:
            raw, source = kwargs[spec.name], "kwarg"
        else:
            raw, source = spec.default, "default"
            for var in spec.env:
                if _is_set(var, env):
                    raw, source = env[var], var
                    break
        if source == "default":
            values[spec.name] = raw
        else:
            try:
                values[spec.name] = spec.parse(raw)
            except (ValueError, TypeError, OverflowError) as exc:
                where = (
                    "keyword argument" if source == "kwarg" else f"environment variable {source}"
                )
                reason = f" — {exc.args[0]}" if isinstance(exc, ValueError) and exc.args else ""
                raise ConfigError(
                    f"obskit setting {spec.name!r} ({where}) has invalid value {raw!r}{reason}; "
                    f"accepted: {spec.accepted}"
                ) from None
        sources[spec.name] = source
    _fill_identity(values, sources)
    notices = [
        *_otel_env.apply_sampler(values, sources, env),
        *_otel_env.apply_exporter(values, sources, env),
        *_otel_env.check_propagators(env),
        *suggest.mistyped_variables(env, [v for spec in SPECS for v in spec.env]),
    ]
    extras = {key: kwargs[key] for key in _OBJECT_KWARGS if kwargs.get(key) is not None}
    for key, value in extras.items():
        spec_ = _OBJECT_BY_NAME[key]
        if not spec_.check(value):
            raise ConfigError(
                f"obskit setting {key!r} must be {spec_.expected}, "
                f"got {value!r} ({type(value).__name__})"
            )
    return Settings(**values, sources=sources, extras=extras, notices=tuple(notices))


def _fill_identity(values: dict[str, Any], sources: dict[str, str]) -> None:
    """service name, version, environment and revision may also come from
    OTEL_RESOURCE_ATTRIBUTES; the version, last, from the service's distribution metadata."""
    attrs: dict[str, str] = values["resource_attributes"]
    fallbacks = {
        "service_name": ("service.name",),
        "service_version": ("service.version",),
        "environment": ("deployment.environment.name", "deployment.environment"),
        "vcs_revision": ("vcs.ref.head.revision",),
    }
    for name, keys in fallbacks.items():
        if sources[name] != "default":
            continue
        for key in keys:
            if attrs.get(key):
                values[name] = attrs[key]
                sources[name] = f"OTEL_RESOURCE_ATTRIBUTES[{key}]"
                break
    if sources["service_version"] == "default":
        found = distribution_version(values["service_name"])
        if found:
            values["service_version"] = found
            sources["service_version"] = f"distribution metadata ({values['service_name']})"
