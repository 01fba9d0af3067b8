"""Closing within a deadline, from any thread or signal handler: how ``shutdown()`` does its work.

Closing a runtime waits on things obskit does not control: locks another thread holds for a
moment (the tick, a scrape, a request), an exporter that does not answer, a stream another thread
is writing. A SIGTERM handler that calls ``obskit.shutdown(timeout=2)`` runs *on* the thread it
interrupted, which may be inside one of those locks; waiting for it there would wait for ever.

So the work runs on a short-lived thread of its own, and the caller waits for it only until the
deadline, and not at all when the calling thread holds one of obskit's locks
(:func:`obskit._locks.held_here`): the work then goes on, as soon as the interrupted code lets
the lock go, and within the same deadline. Each step of the work is bounded by that deadline
too, and the thread is a daemon: an exit never waits for it longer than the deadline, which
:func:`wait` (also called at interpreter exit) waits for.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable

from obskit import _locks

__all__ = ["Closer", "pending", "run", "wait"]


class Closer:
    """One closing job: ``work(deadline)`` on its own thread, done by ``deadline`` if it can be."""

    def __init__(self, work: Callable[[float], None], deadline: float) -> None:
        self.work = work
        self.deadline = deadline
        self.done = _locks.event()
        self.error: BaseException | None = None
        self.claimed = False  # a caller waited and takes the error (re-raises it)

    def _run(self) -> None:
        try:
            self.work(self.deadline)
        except BaseException as exc:  # handed to the caller, or to threading's excepthook
            self.error = exc
        finally:
            self.done.set()
            _forget(self)
        if self.error is not None and not self.claimed:
            raise self.error

    def wait(self) -> bool:
        """Wait until the work is done or the deadline passed; True if done."""
        return self.done.wait(max(0.0, self.deadline - time.monotonic()))


_pending: list[Closer] = []
_pending_lock = _locks.lock()
_exit_hook = False


def _forget(closer: Closer) -> None:
    with _pending_lock:
        if closer in _pending:
            _pending.remove(closer)


def pending() -> list[Closer]:
    """Closing jobs still running."""
    with _pending_lock:
        return list(_pending)


def run(work: Callable[[float], None], deadline: float, *, wait: bool) -> Closer:
    """Run ``work(deadline)`` on its own thread; with ``wait``, until it is done or the deadline.

    An error of the work is raised here when the caller waited for it, else on its thread.
    Where no thread can be started (an interpreter that is exiting), the work runs here.
    """
    global _exit_hook
    closer = Closer(work, deadline)
    closer.claimed = wait
    with _pending_lock:
        _pending.append(closer)
        if not _exit_hook:
            _exit_hook = True
            atexit.register(_wait_at_exit)
    thread = threading.Thread(target=closer._run, name="obskit-shutdown", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # "can't create new thread at interpreter shutdown"
        closer.claimed = True
        closer._run()
    if wait:
        finished = closer.wait()
        if not finished:  # past the deadline: the work goes on, and reports its own error
            closer.claimed = False
            finished = closer.done.is_set()
        if finished and closer.error is not None:
            raise closer.error
    return closer


def wait(deadline: float | None = None) -> None:
    """Wait for closing jobs still running, each until its own deadline (or ``deadline``)."""
    for closer in pending():
        until = closer.deadline if deadline is None else min(deadline, closer.deadline)
        closer.done.wait(max(0.0, until - time.monotonic()))


def _wait_at_exit() -> None:
    # A signal handler's shutdown that could not wait (it interrupted obskit inside a lock)
    # finishes here, once the interrupted code has unwound: bounded by its own deadline.
    if not _locks.held_here():
        wait()
