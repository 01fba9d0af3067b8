"""Keyword arguments of ``init()`` that cannot come from the environment: registries, callables.

Each is declared once with its type in ``init()``'s signature, a one-line description for the
reference, and the check ``init()`` applies (a wrong object is a ``ConfigError`` at ``init()``,
not an ``AttributeError`` later, half-way through wiring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["OBJECTS", "ObjectSpec"]


def _is_registry(value: Any) -> bool:
    from prometheus_client.registry import CollectorRegistry

    return isinstance(value, CollectorRegistry)


def _is_exporter(value: Any) -> bool:
    return callable(getattr(value, "export", None)) and callable(getattr(value, "shutdown", None))


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """A keyword argument that cannot come from the environment (a registry, a callable)."""

    name: str
    kind: str  # its type in init()'s signature
    doc: str
    check: Callable[[Any], bool]
    expected: str  # what the error message says it must be


OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec(
        "registry",
        "CollectorRegistry",
        "A prometheus_client CollectorRegistry for obskit's metrics (default: the global one).",
        _is_registry,
        "a prometheus_client.CollectorRegistry",
    ),
    ObjectSpec(
        "tenant_from",
        "Callable[[Any], object]",
        "Called with the request's ASGI scope or WSGI environ; returns the tenant id, or None to "
        "fall back to tenant_header.",
        callable,
        "a callable",
    ),
    ObjectSpec(
        "redact_processor",
        "Callable[[Any, str, dict[str, Any]], Any]",
        "An extra structlog processor run after obskit's redaction.",
        callable,
        "a callable (a structlog processor)",
    ),
    ObjectSpec(
        "span_exporter",
        "SpanExporter",
        "An OpenTelemetry SpanExporter receiving the kept spans (instead of OTLP or the file).",
        _is_exporter,
        "an OpenTelemetry SpanExporter (with export and shutdown methods)",
    ),
    ObjectSpec(
        "keep_if",
        "Callable[[ReadableSpan], bool]",
        "A predicate on each finished span: a trace with one matching span is kept.",
        callable,
        "a callable",
    ),
)
