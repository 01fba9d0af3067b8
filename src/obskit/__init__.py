"""obskit: logs, RED/USE metrics and tail-sampled traces for Python services, wired by one call.

``import obskit`` has no side effects and imports almost nothing: each public name is loaded from
its home module on first use. ``obskit.init()`` wires everything; ``import obskit.auto`` does the
same from environment variables alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # `name as name`: an explicit re-export, as type checkers' strict modes require.
    from obskit._config import ConfigError as ConfigError
    from obskit._facade import __version__ as __version__
    from obskit._facade import doctor as doctor
    from obskit._facade import init as init
    from obskit._facade import shutdown as shutdown
    from obskit.context import bind as bind
    from obskit.context import bound as bound
    from obskit.context import carry as carry
    from obskit.context import get_context as get_context
    from obskit.context import unbind as unbind
    from obskit.incident.markers import mark_deploy as mark_deploy
    from obskit.logs import get_logger as get_logger
    from obskit.metrics.business import business_event as business_event
    from obskit.metrics.cardinality import label_guard as label_guard
    from obskit.metrics.exposition import metrics_asgi_app as metrics_asgi_app
    from obskit.metrics.exposition import metrics_django_view as metrics_django_view
    from obskit.metrics.exposition import metrics_wsgi_app as metrics_wsgi_app
    from obskit.metrics.exposition import start_metrics_server as start_metrics_server
    from obskit.metrics.red import red as red
    from obskit.metrics.use.event_loop import monitor_event_loop as monitor_event_loop
    from obskit.metrics.use.sqlalchemy import instrument_sqlalchemy as instrument_sqlalchemy
    from obskit.metrics.use.tracking import track_executor as track_executor
    from obskit.metrics.use.tracking import track_pool as track_pool
    from obskit.metrics.use.tracking import track_queue as track_queue
    from obskit.tracing.provider import get_tracer as get_tracer
    from obskit.web.asgi import ASGIMiddleware as ASGIMiddleware
    from obskit.web.django import DjangoMiddleware as DjangoMiddleware
    from obskit.web.wsgi import WSGIMiddleware as WSGIMiddleware

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
    "label_guard": "obskit.metrics.cardinality",
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

# The public names are _HOMES' keys; the TYPE_CHECKING imports above name the same (for type
# checkers), and tests/test_import.py holds the two and the docs to each other.
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'obskit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
