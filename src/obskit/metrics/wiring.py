"""The metrics part of the runtime: sample store, cardinality guard, build info, exposition.

``build(runtime)`` is listed in ``obskit._runtime.BUILDERS``. It decides once, at ``init()``,
whether this process is one worker of a multi-process server (then every family writes shared
files that any worker's scrape aggregates) or a process of its own (then families keep counts in
memory behind one collector on the runtime's registry).

This module builds; it is not where the other parts find what it built. They ask
:func:`obskit._live.metrics` (and :func:`obskit._live.metrics_store`), which need no import of it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import InfoMetricFamily
from prometheus_client.registry import Collector

from obskit import _live, _locks
from obskit._config import ConfigError
from obskit._identity import Identity, identity, iso_time, process_start_time
from obskit._preflight import metrics_url
from obskit.metrics import catalogue, multiprocess
from obskit.metrics._store import Store
from obskit.metrics.cardinality import CardinalityGuard
from obskit.metrics.exposition import MetricsServer
from obskit.metrics.http import HttpServerMetrics
from obskit.metrics.workers import Publisher, WorkerScrape

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = ["BuildInfoCollector", "MetricsComponent", "build"]

_log = logging.getLogger("obskit")


class BuildInfoCollector(Collector):
    """``obskit_build_info{service_name, service_version, deployment_environment, ...} 1``.

    ``started`` (seconds since the epoch) becomes ``process_start_time``: a restart begins a
    new series even when the version stays, so Prometheus alone shows restarts and deploys.
    """

    def __init__(self, ident: Identity, started: float) -> None:
        values = (
            ident.service_name,
            ident.service_version,
            ident.environment,
            ident.obskit_version,
            ident.python_version,
            ident.vcs_revision,
            iso_time(started),
        )
        self._labels = dict(zip(catalogue.BUILD_INFO.labels, values, strict=True))

    def collect(self) -> Iterator[InfoMetricFamily]:
        yield InfoMetricFamily(catalogue.BUILD_INFO.name, catalogue.BUILD_INFO.help, self._labels)


class MetricsComponent:
    """What ``init()`` wired for metrics; reachable through :func:`obskit._live.metrics`."""

    name = "metrics"

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.settings = settings
        self.registry = runtime.registry
        self.multiprocess = multiprocess.setup(settings.multiprocess_dir)
        mp = self.multiprocess
        self.store = Store(values=mp.value_class if mp is not None else None)
        self.publisher: Publisher | None = None
        if mp is None:
            runtime.register(self.store)
            self._scrape: Collector = runtime.registry
        else:
            # obskit's own collectors (USE, tail sampler, internal errors) are registered on
            # the runtime: read at each publication, so those built after this one count too
            # (and those of parts a later init() rebuilt while this one was kept).
            self.publisher = Publisher(_live.collectors, mp.value_class)
            self._scrape = WorkerScrape(runtime.registry, mp.collector(), self.publisher)
        self._guards: dict[str, CardinalityGuard] = {}
        self._lock = _locks.lock()
        self.tenant_guard = self.guard("tenant_id")
        self.exemplars = settings.exemplars
        runtime.register(BuildInfoCollector(identity(settings), self._started()))
        self._http: HttpServerMetrics | None = None
        self.server: MetricsServer | None = None
        if settings.metrics_port is not None:
            self.server = self._start_server(settings.metrics_port, settings.metrics_addr)
        if self.publisher is not None:
            self.publisher.start()

    def _started(self) -> float:
        """When this service instance started. Every worker of a pre-fork server reports its
        master's start (one series for the server, whichever worker answers a scrape; a worker
        recycled by the server is not a restart of the service); any other process its own."""
        if self.multiprocess is None:
            return process_start_time()
        master = multiprocess.detect_master()
        return process_start_time(master if master is not None else os.getppid())

    def _start_server(self, port: int, addr: str) -> MetricsServer | None:
        shared = self.multiprocess is not None
        reuse_port = shared and hasattr(socket, "SO_REUSEPORT")
        try:
            server = MetricsServer(port, addr, reuse_port=reuse_port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and shared and not reuse_port:
                # Another worker of this server serves the port; its scrapes show every worker.
                _log.info("obskit metrics: port %s is served by another worker", port)
                return None
            # init() checked the port before building; another process took it since.
            raise ConfigError(
                f"obskit setting 'metrics_port' is {port}, which cannot be served at {addr} "
                f"({exc.strerror or exc})"
            ) from None
        _log.info("obskit metrics: serving %s", metrics_url(server.addr, server.port))
        return server

    def guard(self, label: str) -> CardinalityGuard:
        """The runtime's guard for a high-cardinality ``label`` (tenant_id, user_id, ...).

        Configured by ``label_top_k`` / ``label_allow``; overflow counted in
        ``obskit_label_overflow_total{label}``. One guard per label name, shared by every family.
        """
        guard = self._guards.get(label)
        if guard is None:
            with self._lock:
                guard = self._guards.get(label)
                if guard is None:
                    guard = self._guards[label] = CardinalityGuard(
                        label,
                        top_k=self.settings.label_top_k,
                        allow=self.settings.label_allow,
                        on_overflow=self.store.overflowed,
                        on_evict=self.store.evicted,
                    )
        return guard

    def scrape_source(self) -> Collector:
        """What a scrape of this runtime reads (every worker's totals in multi-process mode)."""
        return self._scrape

    def http(self) -> HttpServerMetrics:
        """The HTTP server families, created on first use."""
        if self._http is None:
            with self._lock:
                if self._http is None:
                    self._http = HttpServerMetrics(
                        self.store, self.tenant_guard, exemplars=self.exemplars
                    )
        return self._http

    def after_fork_in_child(self) -> None:
        """Counts in memory belong to the parent; a forked child starts from zero."""
        if self.publisher is not None:
            self.publisher.after_fork_in_child()
        if self.multiprocess is None:
            self.store.clear()
            # Its cached children are the parent's (no longer in the families): build anew.
            self._http = None
        if self.server is not None:
            # The serving thread did not survive the fork; the parent keeps serving the port.
            self.server.forget()
            self.server = None

    def shutdown(self, timeout: float) -> None:
        """Stop the metrics server and the publisher; leave multi-process mode."""
        if self.publisher is not None:
            self.publisher.stop(timeout)
        if self.server is not None:
            self.server.close(timeout)
            self.server = None
        if self.multiprocess is not None:
            self.multiprocess.close()


def build(runtime: Runtime) -> MetricsComponent | None:
    """The metrics component, or None when metrics are switched off."""
    if not runtime.settings.metrics:
        return None
    return MetricsComponent(runtime)
