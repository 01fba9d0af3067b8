"""OpenTelemetry's standard variables that obskit honours without owning a setting of the same name.

``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (the SDK environment specification) choose
a *head* sampler. obskit samples at the tail: it keeps every errored and slow trace and a
consistent share of the rest. Where a sampler's meaning maps onto that, it sets obskit's
settings; where it does not, ``init()`` refuses it — a sampler is never silently ignored:

* ``always_on``, ``parentbased_always_on`` → ``sampling=all`` (every trace kept);
* ``traceidratio``, ``parentbased_traceidratio`` with ARG *p* (default 1.0) →
  ``sampling=tail, baseline_ratio=p``: *p* of ordinary traces, chosen consistently by trace id,
  and on top of them every errored and slow trace;
* ``always_off`` / ``parentbased_always_off`` (keep nothing), ``jaeger_remote``, ``xray`` and
  anything else → ``ConfigError`` with what to set instead.

The ``parentbased_`` variants follow a sampled parent in the SDK; obskit's baseline does not read
the parent's flag, but it picks by trace id, so services with the same ratio keep the same
traces. obskit's own settings (keyword arguments, ``OBSKIT_SAMPLING``, ``OBSKIT_BASELINE_RATIO``)
win over these variables; ``init()`` then logs that the sampler was overridden.

``OTEL_TRACES_EXPORTER`` (a comma-separated list) says where spans go:

* ``otlp`` → OTLP export; without an endpoint, to the specification's default
  (``http://localhost:4318`` for http/protobuf, ``http://localhost:4317`` for grpc);
* ``console`` → ``trace_console=true`` (kept traces printed to the log stream; obskit's local
  trace file, which ``obskit traces`` and the incident tools read, stays unless OTLP is on);
* without ``otlp`` in the list, an OTLP endpoint from ``OTEL_EXPORTER_OTLP_*`` is not used;
* ``none`` → ``tracing=false`` (no spans, nothing exported); ``none`` with another name, and
  ``zipkin``, ``jaeger`` or anything else → ``ConfigError`` with what to do instead.

``OTEL_PROPAGATORS`` is read by the SDK when ``opentelemetry.propagate`` is imported, and a name
that is not installed makes that import fail: ``init()`` checks it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from obskit._config import ConfigError

__all__ = ["EXPORTERS", "SAMPLERS", "apply_exporter", "apply_sampler", "check_propagators"]

SAMPLER = "OTEL_TRACES_SAMPLER"
SAMPLER_ARG = "OTEL_TRACES_SAMPLER_ARG"
_RATIO = ("traceidratio", "parentbased_traceidratio")
# sampler -> the obskit settings it stands for (baseline_ratio=None: from the argument)
SAMPLERS: dict[str, dict[str, Any]] = {
    "always_on": {"sampling": "all"},
    "parentbased_always_on": {"sampling": "all"},
    "traceidratio": {"sampling": "tail", "baseline_ratio": None},
    "parentbased_traceidratio": {"sampling": "tail", "baseline_ratio": None},
}
_REFUSED = {
    "always_off": "obskit always keeps errored and slow traces; to export no trace at all set "
    "OBSKIT_TRACING=false, to keep only errored and slow ones set OBSKIT_BASELINE_RATIO=0",
    "jaeger_remote": "obskit decides at the tail, it cannot take a remote sampling strategy",
    "xray": "obskit decides at the tail, it cannot take AWS X-Ray's sampling rules",
}
_REFUSED["parentbased_always_off"] = _REFUSED["always_off"]
_REFUSED["parentbased_jaeger_remote"] = _REFUSED["jaeger_remote"]
_ACCEPTED = ", ".join(SAMPLERS)
# What obskit's middleware and HTTP client instrumentation read and write themselves.
_SPOKEN = {"tracecontext", "baggage", "none"}


def _value(env: Mapping[str, str], var: str) -> str:
    """The variable's value; empty counts as unset (the SDK specification's rule)."""
    return env.get(var, "").strip()


def apply_sampler(
    values: dict[str, Any], sources: dict[str, str], env: Mapping[str, str]
) -> list[str]:
    """Map ``OTEL_TRACES_SAMPLER`` onto ``values`` where nothing more specific set them.

    Returns notices (a sampler overridden by obskit's own settings); raises ``ConfigError``
    for a sampler obskit cannot honour or a bad argument.
    """
    name, arg = _value(env, SAMPLER).lower(), _value(env, SAMPLER_ARG)
    if not name:
        if arg:
            raise ConfigError(
                f"obskit: environment variable {SAMPLER_ARG}={arg!r} is set without {SAMPLER}; "
                f"it is the argument of {SAMPLER}=traceidratio or parentbased_traceidratio"
            )
        return []
    if name not in SAMPLERS:
        why = _REFUSED.get(name, "it is not a sampler obskit knows")
        raise ConfigError(
            f"obskit: environment variable {SAMPLER} has a value obskit cannot honour, "
            f"{name!r} ({why}); accepted: {_ACCEPTED}"
        )
    if arg and name not in _RATIO:
        raise ConfigError(
            f"obskit: environment variable {SAMPLER_ARG}={arg!r} has no meaning for "
            f"{SAMPLER}={name}; only traceidratio and parentbased_traceidratio take one"
        )
    wanted = dict(SAMPLERS[name])
    if "baseline_ratio" in wanted:
        wanted["baseline_ratio"] = _ratio(arg) if arg else 1.0
    notices = []
    for setting, value in wanted.items():
        if sources[setting] == "default":
            values[setting] = value
            sources[setting] = SAMPLER_ARG if setting == "baseline_ratio" and arg else SAMPLER
        elif values[setting] != value:
            notices.append(
                f"{SAMPLER}={name} would set {setting}={value!r}; "
                f"{setting}={values[setting]!r} from {_source(sources[setting])} wins"
            )
    return notices


def _ratio(arg: str) -> float:
    try:
        ratio = float(arg)
    except ValueError:
        ratio = float("nan")
    if not 0.0 <= ratio <= 1.0:  # NaN fails too
        raise ConfigError(
            f"obskit: environment variable {SAMPLER_ARG} has invalid value {arg!r}; "
            "accepted: a probability from 0.0 to 1.0"
        )
    return ratio


def _source(source: str) -> str:
    return "the keyword argument" if source == "kwarg" else source


EXPORTER = "OTEL_TRACES_EXPORTER"
#: The OTEL_TRACES_EXPORTER names obskit honours.
EXPORTERS = ("otlp", "console", "none")
_OTLP_DEFAULT = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}
_VIA_COLLECTOR = (
    "obskit exports OTLP only: send it to an OpenTelemetry Collector with a {name} exporter "
    "(obskit collector-config writes one)"
)
_NOT_EXPORTERS = {
    "zipkin": _VIA_COLLECTOR.format(name="zipkin"),
    "jaeger": "Jaeger takes OTLP itself: OTEL_TRACES_EXPORTER=otlp and its OTLP endpoint",
    "logging": "the old name of console",
}


def apply_exporter(
    values: dict[str, Any], sources: dict[str, str], env: Mapping[str, str]
) -> list[str]:
    """Map ``OTEL_TRACES_EXPORTER`` onto ``values`` where nothing more specific set them.

    Returns notices (an exporter choice overridden by obskit's own settings); raises
    ``ConfigError`` for a name obskit does not honour.
    """
    raw = _value(env, EXPORTER)
    if not raw:
        return []
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for name in names:
        if name not in EXPORTERS:
            why = _NOT_EXPORTERS.get(name, "not an exporter obskit knows")
            raise ConfigError(
                f"obskit: environment variable {EXPORTER} names {name!r} ({why}); "
                f"accepted: {', '.join(EXPORTERS)}, comma-separated"
            )
    if "none" in names and len(set(names)) > 1:
        raise ConfigError(
            f"obskit: environment variable {EXPORTER}={raw!r} combines none with an exporter; "
            "none means no exporter at all"
        )
    wanted: dict[str, Any] = {}
    if names == ["none"]:
        wanted["tracing"] = False
    if "console" in names:
        wanted["trace_console"] = True
    notices: list[str] = []
    if "otlp" in names:
        if sources["otlp_endpoint"] == "default":
            wanted["otlp_endpoint"] = _OTLP_DEFAULT[values["otlp_protocol"]]
    elif values["otlp_endpoint"] and sources["otlp_endpoint"].startswith("OTEL_"):
        notices.append(
            f"{EXPORTER}={raw} has no otlp: the endpoint from {sources['otlp_endpoint']} is "
            "not used"
        )
        values["otlp_endpoint"], sources["otlp_endpoint"] = None, EXPORTER
    elif values["otlp_endpoint"]:
        notices.append(
            f"{EXPORTER}={raw} has no otlp; otlp_endpoint from "
            f"{_source(sources['otlp_endpoint'])} wins"
        )
    for setting, value in wanted.items():
        if sources[setting] == "default":
            values[setting], sources[setting] = value, EXPORTER
        elif values[setting] != value:
            notices.append(
                f"{EXPORTER}={raw} would set {setting}={value!r}; "
                f"{setting}={values[setting]!r} from {_source(sources[setting])} wins"
            )
    return notices


def check_propagators(env: Mapping[str, str]) -> list[str]:
    """Refuse propagator names that are not installed; note those obskit itself does not speak."""
    configured = _value(env, "OTEL_PROPAGATORS")
    if not configured:
        return []
    from importlib.metadata import entry_points

    installed = sorted({ep.name for ep in entry_points(group="opentelemetry_propagator")})
    names = [part.strip() for part in configured.split(",") if part.strip()]
    missing = [name for name in names if name.lower() != "none" and name not in installed]
    if missing:
        raise ConfigError(
            f"obskit: environment variable OTEL_PROPAGATORS names {', '.join(map(repr, missing))}, "
            f"not an installed propagator; accepted: {', '.join(installed)} or none"
        )
    foreign = [name for name in names if name.lower() not in _SPOKEN]
    if not foreign:
        return []
    return [
        f"OTEL_PROPAGATORS names {', '.join(foreign)}: the SDK's global propagator uses it, but "
        "obskit's middleware and HTTP client instrumentation read and write W3C tracecontext "
        "and baggage only"
    ]
