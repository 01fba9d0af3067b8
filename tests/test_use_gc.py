"""GC pauses per generation, recorded by a callback that takes no lock."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

import obskit.testing
from obskit.metrics.use.collector import UseCollector
from obskit.metrics.use.gc import GcCollector


@pytest.fixture
def collector() -> Iterator[GcCollector]:
    """A started GC collector, stopped after the test."""
    source = GcCollector()
    source.start()
    try:
        yield source
    finally:
        source.stop()


def test_full_collection_is_counted(collector: GcCollector) -> None:
    """A gc.collect() adds one generation-2 pause to the histogram."""
    registry = CollectorRegistry()
    registry.register(UseCollector([collector]))
    labels = {"cpython_gc_generation": "2"}
    before = registry.get_sample_value("obskit_gc_pause_seconds_count", labels)
    gc.collect()
    after = registry.get_sample_value("obskit_gc_pause_seconds_count", labels)
    assert before is not None
    assert after == before + 1
    inf = registry.get_sample_value("obskit_gc_pause_seconds_bucket", {**labels, "le": "+Inf"})
    assert after == inf
    assert registry.get_sample_value("cpython_gc_collections_total", labels)


def test_collect_completes_while_registry_lock_is_held(collector: GcCollector) -> None:
    """gc.collect() finishes while another thread holds the registry's lock (no deadlock)."""
    registry = CollectorRegistry()
    registry.register(UseCollector([collector]))
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with registry._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert holding.wait(5)
    done = threading.Event()

    def collect() -> None:
        gc.collect()
        done.set()

    worker = threading.Thread(target=collect, daemon=True)
    worker.start()
    try:
        assert done.wait(10), "gc.collect() blocked while the registry lock was held"
    finally:
        release.set()
        holder.join(5)
        worker.join(5)


def test_collect_during_scrape_completes(collector: GcCollector) -> None:
    """A collection triggered in the middle of a scrape of the GC collector itself completes."""

    class Collecting:
        name, per_process = "collecting", False

        def describe(self) -> list[object]:
            return []

        def read(self, notes: list[str]) -> list[object]:
            gc.collect()
            return []

    registry = CollectorRegistry()
    registry.register(UseCollector([collector, Collecting()]))  # type: ignore[list-item]
    done = threading.Event()
    thread = threading.Thread(target=lambda: (list(registry.collect()), done.set()), daemon=True)
    thread.start()
    assert done.wait(10)


def test_stop_removes_callback() -> None:
    """Stopping the collector removes its callback from gc.callbacks."""
    source = GcCollector()
    source.start()
    count = len(gc.callbacks)
    source.start()
    assert count == len(gc.callbacks)
    source.stop()
    assert count - 1 == len(gc.callbacks)


def test_init_installs_and_shutdown_removes() -> None:
    """init() installs one GC callback; leaving the block removes it again."""
    before = len(gc.callbacks)
    with obskit.testing.isolated(collectors="gc") as capture:
        assert before + 1 == len(gc.callbacks)
        gc.collect()
        labels = {"cpython_gc_generation": "2"}
        assert capture.sample("obskit_gc_pause_seconds_count", labels)
    assert before == len(gc.callbacks)
