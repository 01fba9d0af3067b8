"""Families for long-lived streams (Server-Sent Events, WebSocket), apart from request latency.

A stream lasting an hour would swamp ``http_server_request_duration_seconds`` (and its p99), so
an SSE response is recorded there only up to its first byte (the stream is established) and its
whole life goes here, as does every WebSocket session:

* ``http_server_stream_duration_seconds`` histogram, labels ``kind`` (``sse``/``websocket``),
  ``http_route``, ``outcome`` (``closed``, ``client_closed``, ``error``);
* ``http_server_active_streams`` gauge, labels ``kind``, ``http_route``.
"""

from __future__ import annotations

from typing import Any, Final

from obskit import _caches, _live, _locks
from obskit.metrics import catalogue

__all__ = ["STREAM_BUCKETS", "StreamMetrics", "stream_metrics"]

STREAM_BUCKETS: Final = catalogue.HTTP_SERVER_STREAM_DURATION.buckets
_CACHE_CAP: Final = 1000


class StreamMetrics:
    """The stream families of one runtime's sample store, children cached per label tuple."""

    def __init__(self, store: Any) -> None:
        self._duration_family = store.declare(catalogue.HTTP_SERVER_STREAM_DURATION)
        self._active_family = store.declare(catalogue.HTTP_SERVER_ACTIVE_STREAMS)
        self._duration: dict[tuple[str, str, str], Any] = {}
        self._active: dict[tuple[str, str], Any] = {}
        self._lock = _locks.lock()

    def opened(self, kind: str, route: str) -> None:
        """One more open stream."""
        self._active_child(kind, route).enter()

    def closed(self, kind: str, route: str, outcome: str, duration_s: float) -> None:
        """A stream ended after ``duration_s`` seconds."""
        self._active_child(kind, route).leave()
        key = (kind, route, outcome)
        child = self._duration.get(key)
        if child is None:
            child = self._duration_family.labels(*key)
            with self._lock:
                if len(self._duration) < _CACHE_CAP:
                    self._duration[key] = child
        child.observe(duration_s)

    def _active_child(self, kind: str, route: str) -> Any:
        child = self._active.get((kind, route))
        if child is None:
            child = self._active_family.labels(kind, route)
            with self._lock:
                if len(self._active) < _CACHE_CAP:
                    self._active[(kind, route)] = child
        return child


def _live_streams() -> StreamMetrics | None:
    store = _live.metrics_store()
    return StreamMetrics(store) if store is not None else None


#: The stream families on the live runtime's sample store; None without metrics. (A fork keeps
#: the store but clears its families: the runtime empties this in the child too.)
stream_metrics = _caches.Slot(_live_streams, "web.streams").get
