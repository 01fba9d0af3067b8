"""``obskit.instrument_sqlalchemy(engine)``: a SQLAlchemy engine's pool as a tracked pool.

Used and idle connections are read at scrape time from the pool itself (``checkedout()``,
``checkedin()``; the maximum is ``size() + max_overflow`` for a bounded ``QueuePool``).

Waiting needs a hook before the wait, and SQLAlchemy's pool events have none: ``checkout`` fires
once a connection was obtained, ``connect`` only when a new one is created, ``checkin`` on
return. So the pool's public entry point, ``Pool.connect()`` (what ``Engine.connect()`` and
``raw_connection()`` call), is wrapped on the pool instance: while inside, the acquisition is
pending; on success its duration is a wait-time sample; SQLAlchemy's ``TimeoutError`` (pool
exhausted past ``pool_timeout``) counts as a timeout. ``Engine.dispose()`` replaces the pool; the
``engine_disposed`` event wraps the new one. The engine and its pools are held weakly.
``obskit.testing.reset()`` undoes both (the engine can be instrumented afresh).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from obskit import _caches, _guard
from obskit.metrics.use.pools import PoolHandle
from obskit.metrics.use.tracking import attach_pool

__all__ = ["instrument_sqlalchemy"]

# engine -> its handle and its engine_disposed listener
_handles: weakref.WeakKeyDictionary[Any, tuple[PoolHandle, Callable[[Any], None]]] = (
    weakref.WeakKeyDictionary()
)


def _forget_engines() -> None:
    """``obskit.testing.reset()``: every instrumented engine gets its pool's own ``connect`` and
    loses obskit's listener (the trackers forget the pools themselves)."""
    if not _handles:
        return  # (nothing instrumented: SQLAlchemy may not even be installed)
    from sqlalchemy import event

    for engine, (_, on_disposed) in list(_handles.items()):
        try:
            event.remove(engine, "engine_disposed", on_disposed)
            pool = engine.pool
            if "connect" in vars(pool):
                del pool.connect
        except Exception as exc:
            _guard.report("collectors.pools", exc)
    _handles.clear()


_caches.register(_forget_engines, _caches.PROCESS)


def instrument_sqlalchemy(
    engine: Any, name: str | None = None, registry: CollectorRegistry | None = None
) -> PoolHandle | None:
    """Report the connection pool of ``engine`` (sync or async) as ``name``; never raises.

    ``name`` defaults to ``host:port/database`` from the engine's URL (no credentials). Calling
    it again for the same engine returns the same handle.
    """
    try:
        sync_engine = getattr(engine, "sync_engine", engine)
        existing = _handles.get(sync_engine)
        if existing is not None:
            return existing[0]
        from sqlalchemy import event
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        pool_name = name or _default_name(sync_engine)
        handle = PoolHandle(timeout_errors=(PoolTimeout,))
        _instrument_pool(sync_engine.pool, pool_name, handle, registry)

        def on_disposed(disposed: Any) -> None:
            # dispose() put a new pool on the engine: track it under the same name and handle.
            try:
                _instrument_pool(disposed.pool, pool_name, handle, registry)
            except Exception as exc:
                _guard.report("collectors.pools", exc)

        _handles[sync_engine] = (handle, on_disposed)
        event.listen(sync_engine, "engine_disposed", on_disposed)
        return handle
    except Exception as exc:
        _guard.report("collectors.pools", exc)
        return None


def _instrument_pool(
    pool: Any, name: str, handle: PoolHandle, registry: CollectorRegistry | None
) -> None:
    used, idle = (lambda p: p.checkedout()), (lambda p: p.checkedin())
    attach_pool(handle, pool, name, used, idle, _max_connections, None, registry)
    _wrap_connect(pool, handle)


def _wrap_connect(pool: Any, handle: PoolHandle) -> None:
    # Held weakly and calling the class's method: the wrapper keeps nothing alive.
    ref = weakref.ref(pool)
    original = type(pool).connect

    def connect() -> Any:
        target = ref()
        if target is None:  # unreachable while a caller holds the pool
            raise RuntimeError("pool is gone")
        with handle.waiting():
            return original(target)

    pool.connect = connect


def _max_connections(pool: Any) -> float | None:
    overflow = getattr(pool, "_max_overflow", None)
    if not hasattr(pool, "size") or not isinstance(overflow, int) or overflow < 0:
        return None  # unbounded overflow, or not a QueuePool: no maximum to report
    return float(pool.size() + overflow)


def _default_name(engine: Any) -> str:
    url = engine.url
    where = f"{url.host}:{url.port}" if url.port else (url.host or "")
    return f"{where}/{url.database}" if where else str(url.database or url.drivername)
