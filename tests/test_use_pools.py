"""Connection pools and queues: the generic API and a real SQLAlchemy engine."""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.pool import QueuePool

import obskit

POOL = "db_client_connection_pool_name"
HOLD = 0.3


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """One sample's value."""
    return registry.get_sample_value(name, labels)


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def engine_for(tmp_path: Path, timeout: float) -> sqlalchemy.Engine:
    """A SQLite file engine with a pool of exactly one connection."""
    return sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=timeout,
    )


class TestSqlAlchemy:
    def test_pending_and_wait_time(self, tmp_path: Path) -> None:
        """A second acquirer is pending while the only connection is held; its wait >= hold."""
        registry = CollectorRegistry()
        engine = engine_for(tmp_path, timeout=5.0)
        obskit.instrument_sqlalchemy(engine, name="main", registry=registry)
        holder = engine.connect()
        holder.exec_driver_sql("select 1")
        assert 1 == sample(
            registry, "db_client_connections", **{POOL: "main"}, db_client_connection_state="used"
        )
        assert 1 == sample(registry, "db_client_connection_max", **{POOL: "main"})

        def second() -> None:
            with engine.connect() as conn:
                conn.exec_driver_sql("select 1")

        waiter = threading.Thread(target=second)
        waiter.start()
        pending = "db_client_connection_pending_requests"
        assert wait_until(lambda: sample(registry, pending, **{POOL: "main"}) == 1)
        time.sleep(HOLD)
        holder.close()
        waiter.join(5)
        assert 0 == sample(registry, pending, **{POOL: "main"})
        wait_sum = sample(registry, "db_client_connection_wait_time_seconds_sum", **{POOL: "main"})
        assert wait_sum is not None
        assert wait_sum >= HOLD
        over = "db_client_connection_wait_time_seconds_bucket"
        total = sample(registry, "db_client_connection_wait_time_seconds_count", **{POOL: "main"})
        fast = sample(registry, over, **{POOL: "main"}, le="0.25")
        assert 2 == total
        assert 1 == fast  # the holder's own acquisition; the waiter's is above 0.25 s
        idle = sample(
            registry, "db_client_connections", **{POOL: "main"}, db_client_connection_state="idle"
        )
        assert 1 == idle
        engine.dispose()

    def test_timeout_counted(self, tmp_path: Path) -> None:
        """An acquisition that exceeds pool_timeout counts one timeout and no wait sample."""
        registry = CollectorRegistry()
        engine = engine_for(tmp_path, timeout=0.1)
        obskit.instrument_sqlalchemy(engine, name="main", registry=registry)
        with engine.connect(), pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
        assert 1 == sample(registry, "db_client_connection_timeouts_total", **{POOL: "main"})
        assert 1 == sample(
            registry, "db_client_connection_wait_time_seconds_count", **{POOL: "main"}
        )
        engine.dispose()

    def test_dispose_keeps_tracking(self, tmp_path: Path) -> None:
        """After engine.dispose() the new pool is reported under the same name with the counts."""
        registry = CollectorRegistry()
        engine = engine_for(tmp_path, timeout=0.05)
        obskit.instrument_sqlalchemy(engine, name="main", registry=registry)
        with engine.connect(), pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
        engine.dispose()
        with engine.connect(), pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
        assert 2 == sample(registry, "db_client_connection_timeouts_total", **{POOL: "main"})
        assert 1 == sample(
            registry, "db_client_connections", **{POOL: "main"}, db_client_connection_state="idle"
        )
        engine.dispose()

    def test_engine_is_held_weakly(self, tmp_path: Path) -> None:
        """A garbage engine's pool disappears from the output."""
        registry = CollectorRegistry()
        engine = engine_for(tmp_path, timeout=1.0)
        obskit.instrument_sqlalchemy(engine, name="gone", registry=registry)
        assert 1 == sample(registry, "db_client_connection_max", **{POOL: "gone"})
        engine.dispose()
        del engine
        gc.collect()
        assert sample(registry, "db_client_connection_max", **{POOL: "gone"}) is None


class TestGeneric:
    def test_track_pool_readers_and_handle(self) -> None:
        """Readers are called with the pool; the handle counts pending, waits and timeouts."""

        class Pool:
            in_use, free, size = 3, 1, 4

        registry = CollectorRegistry()
        pool = Pool()
        handle = obskit.track_pool(
            pool,
            "redis",
            used=lambda p: p.in_use,
            idle=lambda p: p.free,
            max=lambda p: p.size,
            registry=registry,
        )
        labels = {POOL: "redis"}
        assert 3 == sample(
            registry, "db_client_connections", **labels, db_client_connection_state="used"
        )
        assert 4 == sample(registry, "db_client_connection_max", **labels)
        with handle.waiting():
            assert 1 == sample(registry, "db_client_connection_pending_requests", **labels)
        with pytest.raises(TimeoutError), handle.waiting():
            raise TimeoutError
        assert 1 == sample(registry, "db_client_connection_timeouts_total", **labels)
        assert 1 == sample(registry, "db_client_connection_wait_time_seconds_count", **labels)

    def test_failing_reader_is_noted(self) -> None:
        """A reader that raises leaves its series out and is noted, the rest still reported."""

        class Pool:
            pass

        registry = CollectorRegistry()
        pool = Pool()
        obskit.track_pool(pool, "p", used=lambda p: p.missing, max=2, registry=registry)
        assert 2 == sample(registry, "db_client_connection_max", **{POOL: "p"})
        info = "obskit_collector_unavailable_info"
        assert 1 == sample(registry, info, collector="pools", reason="reader_failed")

    def test_queues(self) -> None:
        """A queue.Queue and an asyncio.Queue report depth, and capacity when bounded."""
        registry = CollectorRegistry()
        jobs: queue.Queue[int] = queue.Queue(maxsize=10)
        events: asyncio.Queue[int] = asyncio.Queue()
        for item in range(3):
            jobs.put(item)
        events.put_nowait(1)
        obskit.track_queue(jobs, "jobs", registry=registry)
        obskit.track_queue(events, "events", registry=registry)
        assert 3 == sample(registry, "obskit_queue_depth", queue="jobs")
        assert 10 == sample(registry, "obskit_queue_capacity", queue="jobs")
        assert 1 == sample(registry, "obskit_queue_depth", queue="events")
        assert sample(registry, "obskit_queue_capacity", queue="events") is None

    def test_cap_and_replacement_are_counted(self) -> None:
        """Past the cap a new name is refused and counted; a reused name replaces and counts."""
        from obskit.metrics.use import tracked

        registry = CollectorRegistry()
        keep = [queue.Queue() for _ in range(tracked.DEFAULT_CAP + 1)]  # type: ignore[var-annotated]
        for index, item in enumerate(keep):
            obskit.track_queue(item, f"q{index}", registry=registry)
        obskit.track_queue(keep[1], "q0", registry=registry)
        dropped = "obskit_use_tracked_dropped_total"
        assert 1 == sample(registry, dropped, kind="queue", reason="cap")
        assert 1 == sample(registry, dropped, kind="queue", reason="replaced")
        assert b"obskit_use_tracked_dropped_total" in generate_latest(registry)
