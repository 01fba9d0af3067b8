"""``obskit collector-config``: an OpenTelemetry Collector configuration with obskit's policy.

For ``sampling=collector`` deployments (many workers or hosts, where no single process sees a
whole trace). Two tiers: the first receives spans from the services and routes them by trace id
with the ``loadbalancing`` exporter, so every span of a trace reaches the same instance of the
second tier, where ``tail_sampling`` applies the same rules obskit applies in process (errors,
server 5xx, latency, attribute rules, a probabilistic baseline), with a decision cache so late
spans follow their trace. Both tiers are in one file; run them as two deployments by keeping one
pipeline in each.

YAML is written by a tiny emitter here (obskit has no YAML dependency); strings are emitted as
JSON strings, which YAML reads as double-quoted scalars.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from obskit._config import ConfigError, Settings, load_settings

__all__ = ["collector_config", "run", "to_yaml"]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_./-]+$")


def _policies(settings: Settings) -> list[dict[str, Any]]:
    policies: list[dict[str, Any]] = [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {
            "name": "server-5xx",
            "type": "numeric_attribute",
            "numeric_attribute": {
                "key": "http.response.status_code",
                "min_value": 500,
                "max_value": 599,
            },
        },
        {
            "name": "slow",
            "type": "latency",
            "latency": {"threshold_ms": int(settings.slow_threshold_ms)},
        },
    ]
    for key, value in settings.keep_rules:
        policies.append(
            {
                "name": f"keep-{key}-{value}",
                "type": "string_attribute",
                "string_attribute": {"key": key, "values": [value]},
            }
        )
    if settings.baseline_ratio > 0:
        policies.append(
            {
                "name": "baseline",
                "type": "probabilistic",
                "probabilistic": {"sampling_percentage": round(settings.baseline_ratio * 100, 6)},
            }
        )
    return policies


def collector_config(settings: Settings) -> dict[str, Any]:
    """The Collector configuration (as plain data) mirroring ``settings``' sampling policy."""
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "0.0.0.0:4317"},
                    "http": {"endpoint": "0.0.0.0:4318"},
                }
            },
            "otlp/sampling": {"protocols": {"grpc": {"endpoint": "0.0.0.0:5317"}}},
        },
        "processors": {
            "tail_sampling": {
                # Wait for a trace's spans as long as obskit waits for an abandoned trace.
                "decision_wait": f"{settings.trace_timeout_s:g}s",
                "num_traces": settings.max_traces,
                "decision_cache": {
                    "sampled_cache_size": max(1_000, settings.max_traces),
                    "non_sampled_cache_size": max(10_000, 4 * settings.max_traces),
                },
                "policies": _policies(settings),
            },
            "batch": {},
        },
        "exporters": {
            "loadbalancing": {
                "routing_key": "traceID",
                "protocol": {"otlp": {"tls": {"insecure": True}}},
                "resolver": {"dns": {"hostname": "obskit-sampling-tier", "port": "5317"}},
            },
            "otlp/backend": {"endpoint": "tracing-backend:4317", "tls": {"insecure": True}},
        },
        "service": {
            "pipelines": {
                "traces/route-by-trace-id": {
                    "receivers": ["otlp"],
                    "exporters": ["loadbalancing"],
                },
                "traces/tail-sample": {
                    "receivers": ["otlp/sampling"],
                    "processors": ["tail_sampling", "batch"],
                    "exporters": ["otlp/backend"],
                },
            }
        },
    }


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_key(key)}:")
                out.extend(_lines(item, indent + 2))
            elif isinstance(item, dict):
                out.append(f"{pad}{_key(key)}: {{}}")
            elif isinstance(item, list):
                out.append(f"{pad}{_key(key)}: []")
            else:
                out.append(f"{pad}{_key(key)}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_scalar(item)}")
    return out


def to_yaml(data: dict[str, Any]) -> str:
    """Block-style YAML for plain data (dicts, lists, strings, numbers, booleans)."""
    return "\n".join(_lines(data, 0)) + "\n"


_HEADER = """\
# OpenTelemetry Collector configuration generated by `obskit collector-config`
# for services running obskit with sampling=collector.
# Tier 1 (pipeline traces/route-by-trace-id) receives from the services and routes each trace
# to one tier-2 instance by trace id; tier 2 (traces/tail-sample) decides with the policies
# obskit applies in process. Replace obskit-sampling-tier and tracing-backend with your hosts.
# Not translated: keep_if (a Python predicate) and per-route latency (slow_per_route). The
# probabilistic policy keeps the same share as obskit's baseline, hashed by the Collector.
"""


def run(args: argparse.Namespace) -> int:
    """Print the configuration for the environment's settings; 2 on an invalid setting."""
    try:
        settings = load_settings({})
    except ConfigError as exc:
        print(f"obskit collector-config: {exc}", file=sys.stderr)
        return 2
    data = collector_config(settings)
    if getattr(args, "format", "yaml") == "json":
        print(json.dumps(data, indent=2))
    else:
        sys.stdout.write(_HEADER + to_yaml(data))
    return 0
