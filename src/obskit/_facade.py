"""The public setup functions behind ``obskit.init`` / ``obskit.shutdown`` / ``obskit.doctor``."""

from __future__ import annotations

from typing import Any

from obskit import _runtime
from obskit._identity import OBSKIT_VERSION as __version__

__all__ = ["__version__", "doctor", "init", "shutdown"]


def init(**settings: Any) -> None:
    """Wire logs, metrics and traces. Idempotent; a call with other settings reconfigures.

    Keyword arguments win over environment variables, which win over defaults (see the
    configuration reference). An invalid value raises :class:`obskit.ConfigError` naming the
    setting, the value and what is accepted.
    """
    _runtime.init(**settings)


def shutdown(timeout: float = 5.0) -> None:
    """Decide and flush pending traces, stop obskit's threads and servers, within ``timeout`` s."""
    _runtime.shutdown(timeout)


def doctor() -> dict[str, Any]:
    """The effective configuration, where each value came from, and what is wired."""
    runtime = _runtime.current()
    if runtime is None:
        return {"initialized": False}
    settings = runtime.settings
    values = {
        name: getattr(settings, name)
        for name in settings.__dataclass_fields__
        if name not in ("sources", "extras")
    }
    return {
        "initialized": True,
        "obskit_version": __version__,
        "disabled": runtime.disabled,
        "settings": values,
        "sources": dict(settings.sources),
        "objects": sorted(settings.extras),
        "components": sorted(runtime.components),
        "wired": _wired(runtime),
    }


def _wired(runtime: Any) -> dict[str, Any]:
    """Where each part's output goes: what a user checks first when a signal is missing."""
    wired: dict[str, Any] = {}
    tracing = runtime.components.get("tracing")
    if tracing is not None:
        wired["traces"] = getattr(tracing, "destination", "") or "unknown"
        wired["sampling"] = runtime.settings.sampling
        from obskit.tracing import api, server_span

        # Whether requests get the cheap span: an application's own span processor turns it off.
        wired["server_spans"] = (
            "lightweight until kept"
            if server_span.lightweight(api.get_tracer())
            else "SDK spans (a span processor besides the tail sampler is registered)"
        )
    metrics = runtime.components.get("metrics")
    if metrics is not None:
        shared = getattr(metrics, "multiprocess", None)
        wired["metrics_multiprocess_dir"] = getattr(shared, "path", None)
        server = getattr(metrics, "server", None)
        if server is not None:
            wired["metrics_server_port"] = getattr(server, "port", None)
    wired["logs"] = runtime.settings.log_stream
    return wired
