"""Checks ``init()`` makes against this machine before it changes anything.

A setting can be well formed and still unusable here: a trace file in a directory obskit cannot
write, a multi-process directory under a path that is a file, a metrics port another process
holds, an address this host does not have, an OTLP endpoint whose exporter is not installed.
Each is a :class:`~obskit.ConfigError` from ``init()`` before logging is taken over and before
any thread, file or collector exists; a previous runtime is left as it was.

Writability is tried, not inferred from permission bits (root, ACLs and read-only mounts make
those lie): a probe file is created in the nearest existing directory and removed at once.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import tempfile

from obskit._config import SPECS, ConfigError, Settings

__all__ = ["check", "metrics_url", "multiprocess", "shares_port"]

_ACCEPTED = {spec.name: spec.accepted for spec in SPECS}
_OTLP_MODULES = {
    "http/protobuf": ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otlp"),
    "grpc": ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "grpc"),
}


def check(settings: Settings, *, port: bool = True) -> None:
    """Raise ``ConfigError`` if ``settings`` cannot work here; ``port``: also try the bind."""
    if settings.disabled:
        return
    if settings.tracing:
        _check_export(settings)
    if settings.metrics:
        if settings.multiprocess_dir:
            _writable_dir(settings, "multiprocess_dir", settings.multiprocess_dir)
        if port and settings.metrics_port is not None:
            _bindable(settings)


def _where(settings: Settings, name: str) -> str:
    source = settings.sources.get(name, "default")
    if source == "kwarg":
        return "keyword argument"
    if source == "default":
        return "default"
    return f"environment variable {source}"


def _fail(settings: Settings, name: str, value: object, why: str) -> ConfigError:
    return ConfigError(
        f"obskit setting {name!r} ({_where(settings, name)}) has value {value!r}, {why}; "
        f"accepted: {_ACCEPTED[name]}"
    )


def _check_export(settings: Settings) -> None:
    if settings.extras.get("span_exporter") is not None:
        return
    if settings.otlp_endpoint:
        module, extra = _OTLP_MODULES[settings.otlp_protocol]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            from obskit._identity import DISTRIBUTION

            raise ConfigError(
                f"obskit setting 'otlp_endpoint' ({_where(settings, 'otlp_endpoint')}) is set, but "
                f"the OTLP {settings.otlp_protocol} exporter is not installed: "
                f"pip install '{DISTRIBUTION}[{extra}]'"
            )
        return
    from obskit.tracing.sinks import default_sink_path

    if settings.trace_sink:
        _writable_file(settings, "trace_sink", settings.trace_sink)
        return
    try:
        _writable_file(settings, "trace_sink", default_sink_path(settings.service_name))
    except ConfigError as exc:
        # Nothing was configured: say what to configure (a read-only container, typically).
        raise ConfigError(
            f"{exc}. Kept traces need somewhere to go: set OBSKIT_TRACE_SINK to a writable file, "
            "OTEL_EXPORTER_OTLP_ENDPOINT to export them, or OBSKIT_TRACING=false"
        ) from None


def _writable_file(settings: Settings, name: str, path: str) -> None:
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise _fail(settings, name, path, "which is a directory")
    if os.path.exists(full):
        try:
            with open(full, "ab"):
                pass
        except OSError as exc:
            raise _fail(
                settings, name, path, f"which obskit cannot write ({exc.strerror})"
            ) from None
        return
    _probe(settings, name, path, os.path.dirname(full))


def _writable_dir(settings: Settings, name: str, path: str) -> None:
    full = os.path.abspath(path)
    if os.path.exists(full) and not os.path.isdir(full):
        raise _fail(settings, name, path, "which is not a directory")
    _probe(settings, name, path, full)


def _probe(settings: Settings, name: str, value: str, directory: str) -> None:
    """Create and remove a file in ``directory``, or in its nearest existing ancestor."""
    existing = directory
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise _fail(settings, name, value, f"but {existing} is not a directory")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".obskit-probe-")
    except OSError as exc:
        raise _fail(
            settings, name, value, f"but obskit cannot write in {existing} ({exc.strerror})"
        ) from None
    os.close(handle)
    os.unlink(probe)


def multiprocess(settings: Settings) -> bool:
    """Whether this process is one worker of several sharing metric files (and the port)."""
    if settings.multiprocess_dir:
        return True
    from obskit.metrics import multiprocess as shared

    return shared.detect_master() is not None


def shares_port(settings: Settings) -> bool:
    """Whether this process's metrics server shares its port with the server's other workers."""
    return hasattr(socket, "SO_REUSEPORT") and multiprocess(settings)


def _bindable(settings: Settings) -> None:
    addr, port = settings.metrics_addr, settings.metrics_port
    assert port is not None
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise _fail(settings, "metrics_addr", addr, f"which does not resolve ({exc})") from None
    shared = multiprocess(settings)
    if shared and not hasattr(socket, "SO_REUSEPORT"):
        return  # another worker may hold the port and serve every worker's totals: not an error
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _fail(
                    settings,
                    "metrics_port",
                    port,
                    f"which another process already listens on at {addr}; choose a free port, "
                    "or leave metrics_port unset and serve /metrics from the application",
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise _fail(
                    settings, "metrics_addr", addr, "which is not an address of this machine"
                ) from None
            raise _fail(
                settings, "metrics_port", port, f"which cannot be bound at {addr} ({exc.strerror})"
            ) from None


def metrics_url(addr: str, port: int) -> str:
    """The URL a scraper uses for a metrics server bound to ``addr``:``port``."""
    host = f"[{addr}]" if ":" in addr else addr
    return f"http://{host}:{port}/metrics"
