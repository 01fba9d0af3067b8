"""obskit: logs, RED/USE metrics and tail-sampled traces for Python services, wired by one call.

``import obskit`` has no side effects and imports almost nothing: each public name is loaded from
its home module on first use. ``obskit.init()`` wires everything; ``import obskit.auto`` does the
same from environment variables alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from obskit._config import ConfigError
    from obskit._facade import __version__, doctor, init, shutdown
    from obskit.context import bind, bound, carry, get_context, unbind
    from obskit.incident.markers import mark_deploy
    from obskit.logs import get_logger
    from obskit.metrics.business import business_event
    from obskit.metrics.exposition import (
        metrics_asgi_app,
        metrics_django_view,
        metrics_wsgi_app,
        start_metrics_server,
    )
    from obskit.metrics.red import red
    from obskit.metrics.use.event_loop import monitor_event_loop
    from obskit.metrics.use.sqlalchemy import instrument_sqlalchemy
    from obskit.metrics.use.tracking import track_executor, track_pool, track_queue
    from obskit.tracing.provider import get_tracer
    from obskit.web.asgi import ASGIMiddleware
    from obskit.web.django import DjangoMiddleware
    from obskit.web.wsgi import WSGIMiddleware

# public name -> module that defines it
_HOMES = {
    "ASGIMiddleware": "obskit.web.asgi",
    "ConfigError": "obskit._config",
    "DjangoMiddleware": "obskit.web.django",
    "__version__": "obskit._facade",
    "bind": "obskit.context",
    "bound": "obskit.context",
    "business_event": "obskit.metrics.business",
    "carry": "obskit.context",
    "doctor": "obskit._facade",
    "get_context": "obskit.context",
    "get_logger": "obskit.logs",
    "get_tracer": "obskit.tracing.provider",
    "init": "obskit._facade",
    "instrument_sqlalchemy": "obskit.metrics.use.sqlalchemy",
    "mark_deploy": "obskit.incident.markers",
    "metrics_asgi_app": "obskit.metrics.exposition",
    "metrics_django_view": "obskit.metrics.exposition",
    "metrics_wsgi_app": "obskit.metrics.exposition",
    "monitor_event_loop": "obskit.metrics.use.event_loop",
    "red": "obskit.metrics.red",
    "shutdown": "obskit._facade",
    "start_metrics_server": "obskit.metrics.exposition",
    "track_executor": "obskit.metrics.use.tracking",
    "track_pool": "obskit.metrics.use.tracking",
    "track_queue": "obskit.metrics.use.tracking",
    "unbind": "obskit.context",
    "WSGIMiddleware": "obskit.web.wsgi",
}

__all__ = [
    "ASGIMiddleware",
    "ConfigError",
    "DjangoMiddleware",
    "WSGIMiddleware",
    "__version__",
    "bind",
    "bound",
    "business_event",
    "carry",
    "doctor",
    "get_context",
    "get_logger",
    "get_tracer",
    "init",
    "instrument_sqlalchemy",
    "mark_deploy",
    "metrics_asgi_app",
    "metrics_django_view",
    "metrics_wsgi_app",
    "monitor_event_loop",
    "red",
    "shutdown",
    "start_metrics_server",
    "track_executor",
    "track_pool",
    "track_queue",
    "unbind",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'obskit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
