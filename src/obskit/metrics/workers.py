"""Multi-worker scrapes: every family is summed over the workers or carries the worker's ``pid``.

Under gunicorn or ``uvicorn --workers`` a scrape reaches one worker, chosen by the kernel. The
families obskit keeps in prometheus-client's shared memory-mapped files (RED, the label guard's
overflow) already add up over the workers. Everything a collector reads at scrape time, though,
describes only the worker that answers: its GC counts, CPU time, tail-sampler decisions and
threads alternate from scrape to scrape, and Prometheus reads every drop as a counter reset.

So in multi-process mode (see :mod:`obskit.metrics.multiprocess`) a :class:`Publisher` in every
worker reads obskit's own collectors every few seconds (and the answering worker at each scrape)
and writes their families into the same shared files, as the catalogue's ``workers`` policy says:

- ``"sum"``: counters and histograms (CPU time, GC collections and pauses, loop lag, tail
  decisions, internal errors) are summed over the workers, dead ones included;
- ``"pid"``: per-process gauges (threads, RSS, buffered traces, collector status) get one series
  per worker with a ``pid`` label; a dead worker's series go away;
- ``"same"``: families that are the same in every worker (build info, the container's cgroup
  figures) stay live and come from the worker that answers.

A :class:`WorkerScrape` is what one scrape reads: the registry's live families minus those that
come from the files, then the files. prometheus-client's own process and GC collectors, if they
are on the registry, are left out as well: they can only show one worker at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from obskit import _guard, _locks
from obskit.metrics import catalogue

__all__ = ["PROMETHEUS_CLIENT_PER_PROCESS", "PUBLISH_INTERVAL_S", "Publisher", "WorkerScrape"]

PUBLISH_INTERVAL_S = 5.0
# Values cached per series; beyond this (never reached with the capped trackers) writes are
# skipped rather than growing the files without bound.
MAX_SERIES = 10_000
# Families of prometheus-client's default ProcessCollector and GCCollector: one worker's figures.
PROMETHEUS_CLIENT_PER_PROCESS = frozenset(
    (
        "process_cpu_seconds",
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
        "python_gc_objects_collected",
        "python_gc_objects_uncollectable",
        "python_gc_collections",
    )
)
# Catalogue families that reach a multi-worker scrape through the shared files.
_FROM_FILES = {f.name: f for f in catalogue.FAMILIES if f.workers != "same"}


class WorkerScrape(Collector):
    """One worker's answer to a scrape: live families the same in every worker, then the files.

    ``publisher`` first writes this worker's own figures, so the answer is current for it; the
    other workers' are at most one publishing interval old.
    """

    def __init__(self, live: Collector, files: Collector, publisher: Publisher) -> None:
        self._live = live
        self._files = files
        self._publisher = publisher

    def collect(self) -> Iterator[Metric]:
        """Yield the families of one multi-worker scrape."""
        self._publisher.publish_once()
        for metric in self._live.collect():
            name = metric.name
            if name in _FROM_FILES or name in PROMETHEUS_CLIENT_PER_PROCESS:
                continue
            yield metric
        yield from self._files.collect()


class Publisher:
    """Writes the per-worker families of ``collectors()`` into multi-process files.

    ``collectors`` is called at each publication: collectors registered after the publisher
    started (USE, tail sampler) are picked up. It publishes on :meth:`start` and then every
    ``interval`` seconds on a daemon thread.
    """

    def __init__(
        self,
        collectors: Callable[[], Iterable[Collector]],
        value_class: Any,
        interval: float = PUBLISH_INTERVAL_S,
    ) -> None:
        self._collectors = collectors
        self._value_class = value_class
        self.interval = interval
        self._values: dict[tuple[str, str, tuple[tuple[str, str], ...]], Any] = {}
        self._stop = _locks.event()
        self._thread: threading.Thread | None = None
        # Held while publishing. A fork while this thread writes leaves no lock held in the child:
        # this one and prometheus-client's lock of the shared files (which obskit adopts, see
        # obskit.metrics.multiprocess) are re-made there by obskit._locks. No fork waits for it.
        self._busy = _locks.lock()
        self.skipped = 0

    def start(self) -> None:
        """Publish once now, then on a daemon thread every ``interval`` seconds."""
        self.publish_once()
        self._start_thread()

    def _start_thread(self) -> None:
        self._stop = _locks.event()
        thread = threading.Thread(target=self._run, name="obskit-metrics-publisher", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread (it exits at its next wake-up at the latest)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """The thread did not survive the fork: start the child's own.

        Nothing is written from here: this runs inside the fork hook, where waiting on any
        lock another thread of the parent held would hang the new worker. Nor does the new
        thread publish at once: the other components' fork hooks may not have reset their
        parent's counts yet, and a child file holding the parent's count and then the child's
        own would go backwards. The child's first scrape, or its first interval, publishes.
        """
        self._thread = None
        self._values = {}
        self._start_thread()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            self.publish_once()

    def publish_once(self) -> None:
        """Read every collector and write its per-worker families; a failing one is skipped."""
        with self._busy:
            self._publish()

    def _publish(self) -> None:
        for collector in list(self._collectors()):
            try:
                families = list(collector.collect())
            except Exception as exc:
                _guard.report("metrics.publish", exc)
                continue
            for family in families:
                declared = _FROM_FILES.get(family.name)
                if declared is None:
                    continue
                try:
                    self._write(family, declared)
                except Exception as exc:
                    _guard.report("metrics.publish", exc)

    def _write(self, family: Metric, declared: catalogue.Family) -> None:
        if family.type in ("gauge", "info"):
            mode = "liveall" if declared.workers == "pid" else "livesum"
            # An info family becomes a gauge named like its series (the files know no infos).
            name = family.name + "_info" if family.type == "info" else family.name
            for sample in family.samples:
                self._set("gauge", name, family, sample.name, sample.labels, sample.value, mode)
        elif family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    self._set(
                        "counter", family.name, family, sample.name, sample.labels, sample.value
                    )
        elif family.type == "histogram":
            # The files hold per-bucket counts; the reader makes them cumulative again.
            previous: dict[tuple[tuple[str, str], ...], float] = {}
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    series = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                    own = sample.value - previous.get(series, 0.0)
                    previous[series] = sample.value
                    self._set("histogram", family.name, family, sample.name, sample.labels, own)
                elif sample.name.endswith("_sum"):
                    self._set(
                        "histogram", family.name, family, sample.name, sample.labels, sample.value
                    )

    def _set(
        self,
        typ: str,
        name: str,
        family: Metric,
        sample_name: str,
        labels: dict[str, str],
        value: float,
        mode: str = "",
    ) -> None:
        items = tuple(labels.items())
        key = (typ, sample_name, items)
        target = self._values.get(key)
        if target is None:
            if len(self._values) >= MAX_SERIES:
                self.skipped += 1
                return
            names = tuple(k for k, _ in items)
            values = tuple(v for _, v in items)
            target = self._value_class(
                typ,
                name,
                sample_name,
                names,
                values,
                family.documentation,
                multiprocess_mode=mode,
            )
            self._values[key] = target
        target.set(value)
