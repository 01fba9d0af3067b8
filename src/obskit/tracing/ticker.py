"""A background thread that calls one function at a fixed interval until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable

from obskit import _guard, _locks

__all__ = ["Ticker"]


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds on a daemon thread, started on demand.

    Started lazily rather than at construction: an object abandoned in a forked child (obskit
    builds fresh ones there) must not start a thread that would keep it alive.
    """

    def __init__(self, tick: Callable[[], object], interval: float, name: str) -> None:
        self._tick = tick
        self._interval = interval
        self._name = name
        self._lock = _locks.lock()
        self._stop = _locks.event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        """Whether the thread was started (and not stopped)."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread once; later calls, and calls after ``stop``, do nothing."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread = thread
        thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except Exception as exc:  # under obskit's strict tests this ends the thread, loudly
                _guard.report(f"{self._name}.tick", exc)

    def stop(self, timeout: float) -> None:
        """Stop ticking; wait up to ``timeout`` seconds for a tick in progress."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))

    def after_fork_in_child(self) -> None:
        """Forget the parent's thread (it does not run in the child): ticking starts afresh."""
        self._thread = None
        self._stop.clear()
