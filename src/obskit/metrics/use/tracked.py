"""The objects the application asked obskit to watch (executors, pools, queues), held weakly.

The executors and pools collectors read the live entries of a :class:`Trackers` at scrape time.
Entries hold their object through a weak reference, so tracking never keeps a pool or an
executor alive: once it is garbage, its series disappear at the next scrape. Each kind is capped;
an entry refused at the cap, or replaced by a newer object tracked under the same name, is
counted in ``obskit_use_tracked_dropped_total{kind,reason}``.

(What the application calls to track something is in :mod:`obskit.metrics.use.tracking`.)
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

from obskit import _locks

__all__ = ["DEFAULT_CAP", "Tracker", "Trackers", "default_trackers"]

DEFAULT_CAP = 256
E = TypeVar("E")


class Tracker(Generic[E]):
    """Entries of one kind by name, each alive while its object is."""

    def __init__(self, kind: str, cap: int = DEFAULT_CAP) -> None:
        self.kind = kind
        self.cap = cap
        self._lock = _locks.lock()
        self._entries: dict[str, tuple[weakref.ref[Any], E]] = {}
        self.dropped: dict[str, int] = {}

    def add(self, obj: Any, name: str, entry: E) -> bool:
        """Track ``obj`` as ``name``; False (and counted) when the kind is at its cap."""
        with self._lock:
            self._prune()
            current = self._entries.get(name)
            if current is not None and current[0]() is not obj:
                self.dropped["replaced"] = self.dropped.get("replaced", 0) + 1
            elif current is None and len(self._entries) >= self.cap:
                self.dropped["cap"] = self.dropped.get("cap", 0) + 1
                return False
            self._entries[name] = (weakref.ref(obj), entry)
        return True

    def find(self, obj: Any) -> E | None:
        """The entry tracking ``obj``, if any."""
        with self._lock:
            for ref, entry in self._entries.values():
                if ref() is obj:
                    return entry
        return None

    def live(self) -> list[tuple[str, Any, E]]:
        """(name, object, entry) of every entry whose object is alive, by name."""
        with self._lock:
            self._prune()
            items = [(name, ref(), entry) for name, (ref, entry) in self._entries.items()]
        return sorted(((n, o, e) for n, o, e in items if o is not None), key=lambda i: i[0])

    def remove(self, name: str) -> E | None:
        """Stop tracking ``name``; its entry, if it had one."""
        with self._lock:
            item = self._entries.pop(name, None)
        return None if item is None else item[1]

    def clear(self) -> list[tuple[Any, E]]:
        """Forget every entry and count; (object, entry) of the live ones, to undo tracking."""
        with self._lock:
            items, self._entries = list(self._entries.values()), {}
            self.dropped = {}
        return [(obj, entry) for ref, entry in items if (obj := ref()) is not None]

    def _prune(self) -> None:
        dead = [name for name, (ref, _) in self._entries.items() if ref() is None]
        for name in dead:
            del self._entries[name]


class Trackers:
    """The trackers one set of collectors reads: executors, pools and queues."""

    def __init__(self) -> None:
        self.executors: Tracker[Any] = Tracker("executor")
        self.pools: Tracker[Any] = Tracker("pool")
        self.queues: Tracker[Any] = Tracker("queue")


_lock = _locks.lock()
_default: Trackers | None = None


def default_trackers() -> Trackers:
    """The process-wide trackers, read by the collectors ``init()`` registers."""
    global _default
    with _lock:
        if _default is None:
            _default = Trackers()
        return _default
