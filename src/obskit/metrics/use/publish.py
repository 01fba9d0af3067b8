"""Multi-worker mode: each worker writes its per-process USE families into the shared files.

A collector read at scrape time only sees the process that answers the scrape — under gunicorn,
one worker at random, so each worker's series would flicker in and out (prometheus-client's
custom collectors do not aggregate across processes). When the metrics part runs in
multi-process mode (see :mod:`obskit.metrics.multiprocess`), a :class:`Publisher` thread in every
worker reads the per-process sources every few seconds and writes them into the same memory-mapped
files the RED metrics use, so any worker's scrape shows every worker:

- gauges (threads, RSS, busy workers, ...) in ``liveall`` mode: one series per worker with a
  ``pid`` label; a dead worker's series go away;
- counters and histograms (CPU time, GC pauses, loop lag, pool waits) are summed over workers,
  the aggregation a dashboard wants anyway.

Container-wide sources (cgroup) are the same for every worker and stay live on the registry.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from obskit import _guard
from obskit.metrics.use.collector import Source

__all__ = ["PUBLISH_INTERVAL_S", "Publisher"]

PUBLISH_INTERVAL_S = 5.0
# Values cached per series; beyond this (never reached with the capped trackers) writes are
# skipped rather than growing the files without bound.
MAX_SERIES = 10_000


class Publisher:
    """Writes the families of ``sources`` into multi-process files, now and every ``interval``."""

    def __init__(
        self, sources: Sequence[Source], value_class: Any, interval: float = PUBLISH_INTERVAL_S
    ) -> None:
        self.sources = list(sources)
        self._value_class = value_class
        self.interval = interval
        self._values: dict[tuple[str, str, tuple[tuple[str, str], ...]], Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Held while publishing and across a fork (see _hold_across_fork): a worker forked from a
        # master must not inherit prometheus-client's file lock held by this thread mid-write.
        self._busy = threading.Lock()
        self.skipped = 0

    def start(self) -> None:
        """Publish once now, then on a daemon thread every ``interval`` seconds."""
        _hold_across_fork(self)
        self.publish_once()
        self._start_thread(publish_first=False)

    def _start_thread(self, publish_first: bool) -> None:
        self._stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(publish_first,), name="obskit-use-publisher", daemon=True
        )
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread (it exits at its next wake-up at the latest)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """The thread did not survive the fork: start the child's own, which publishes at once.

        Nothing is written from here: this runs inside the fork hook, where waiting on any
        lock another thread of the parent held would hang the new worker.
        """
        self._thread = None
        self._values = {}
        self._busy = threading.Lock()  # the parent's was held across the fork
        self._start_thread(publish_first=True)

    def _run(self, publish_first: bool) -> None:
        if publish_first:
            self.publish_once()
        stop = self._stop
        while not stop.wait(self.interval):
            self.publish_once()

    def publish_once(self) -> None:
        """Read every source and write its families; a failing source is skipped."""
        with self._busy:
            self._publish()

    def _publish(self) -> None:
        for source in self.sources:
            try:
                families = list(source.read([]))
            except Exception:  # unavailable or failing: the live status family says why
                continue
            for family in families:
                try:
                    self._write(family)
                except Exception as exc:
                    _guard.report("collectors.publish", exc)

    def _write(self, family: Metric) -> None:
        if family.type == "gauge":
            for sample in family.samples:
                self._set("gauge", family, sample.name, sample.labels, sample.value, "liveall")
        elif family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    self._set("counter", family, sample.name, sample.labels, sample.value, "")
        elif family.type == "histogram":
            # The files hold per-bucket counts; the reader makes them cumulative again.
            previous: dict[tuple[tuple[str, str], ...], float] = {}
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    series = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                    own = sample.value - previous.get(series, 0.0)
                    previous[series] = sample.value
                    self._set("histogram", family, sample.name, sample.labels, own, "")
                elif sample.name.endswith("_sum"):
                    self._set("histogram", family, sample.name, sample.labels, sample.value, "")

    def _set(
        self,
        typ: str,
        family: Metric,
        sample_name: str,
        labels: dict[str, str],
        value: float,
        mode: str,
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
                family.name,
                sample_name,
                names,
                values,
                family.documentation,
                multiprocess_mode=mode,
            )
            self._values[key] = target
        target.set(value)


_publishers: weakref.WeakSet[Publisher] = weakref.WeakSet()
_fork_hook_installed = False


def _hold_across_fork(publisher: Publisher) -> None:
    """Make forks wait for a publish in progress, so no child inherits a held file lock."""
    global _fork_hook_installed
    _publishers.add(publisher)
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    _fork_hook_installed = True
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork_in_child
    )


def _before_fork() -> None:
    for publisher in list(_publishers):
        publisher._busy.acquire()


def _after_fork() -> None:
    for publisher in list(_publishers):
        if publisher._busy.locked():
            publisher._busy.release()


def _after_fork_in_child() -> None:
    # Publishers of a runtime get a fresh lock from its fork hook too; this covers the others.
    for publisher in list(_publishers):
        if publisher._busy.locked():
            publisher._busy = threading.Lock()
