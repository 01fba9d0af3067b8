"""The locks obskit owns: re-made in a forked child, and asked whether this thread holds one.

A fork copies only the forking thread. A lock that another thread held at that moment stays held
in the child for ever, and the child's first request (or its first fork hook) that needs it hangs.
Every lock, condition and event obskit creates comes from here, and one ``after_in_child`` hook
re-initialises all of them. Nothing runs before a fork: a ``before`` hook that took locks would
make ``os.fork()`` wait on whichever thread holds them.

The locks :func:`shutdown` needs are reentrant ones made by :func:`rlock`, so that
:func:`held_here` can tell whether the calling thread holds one. A signal handler runs on the
thread it interrupted; when that thread was inside one of those locks, waiting for it would wait
for ever, so ``obskit.shutdown()`` hands its work to another thread instead (see
:mod:`obskit._closing`). The lock is never *re-entered* to change what it guards.

Objects that hold many locks of their own (the metric store's children) register themselves
with :func:`register` and re-make their locks in their ``_at_fork_reinit``.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["adopt", "condition", "event", "held_here", "lock", "owned", "register", "rlock"]


_forkable: weakref.WeakSet[Any] = weakref.WeakSet()
# Reentrant locks, as weak references in a plain list: copying a list is atomic under the GIL,
# so held_here can read it from a signal handler while another thread adds to it.
_owned: list[weakref.ref[Any]] = []
_owned_lock = threading.Lock()  # only for adding to and pruning _owned
_hook_installed = False


def _after_fork_in_child() -> None:
    # The child has one thread: nothing can hold these now, so nothing is waited for.
    for item in list(_forkable):
        try:
            item._at_fork_reinit()
        except Exception:  # one odd object must not keep the others held
            pass


def _install() -> None:
    # Installed with the first lock (a module-level lock makes it at import): it only ever
    # re-initialises locks, and must run before any other obskit fork hook that may take one.
    global _hook_installed
    if not _hook_installed and hasattr(os, "register_at_fork"):
        _hook_installed = True
        _forkable.add(_owned_lock)
        os.register_at_fork(after_in_child=_after_fork_in_child)


def register(item: Any) -> None:
    """Call ``item._at_fork_reinit()`` in every forked child (held weakly).

    CPython's locks, conditions and events have that method (typeshed does not declare it).
    """
    _install()
    _forkable.add(item)


def adopt(item: Any) -> bool:
    """Register a lock another library owns, when it can be re-made (CPython's locks can)."""
    if not callable(getattr(item, "_at_fork_reinit", None)):
        return False
    try:
        register(item)
    except TypeError:  # not weakly referenceable
        return False
    return True


def lock() -> threading.Lock:
    """A ``threading.Lock`` that is released in a forked child."""
    made = threading.Lock()
    register(made)
    return made


def rlock() -> threading.RLock:
    """A ``threading.RLock`` released in a forked child, and known to :func:`held_here`."""
    made = threading.RLock()
    register(made)
    with _owned_lock:
        owned = _owned
        owned.append(weakref.ref(made))
        if len(owned) >= 64 and len(owned) & (len(owned) - 1) == 0:  # now and then: the dead
            owned[:] = [ref for ref in owned if ref() is not None]
    return made


def condition(inner: threading.RLock | None = None) -> threading.Condition:
    """A ``threading.Condition`` on a reentrant lock (:func:`rlock`), re-made in a child."""
    made = threading.Condition(inner if inner is not None else rlock())
    register(made)
    return made


def event() -> threading.Event:
    """A ``threading.Event`` whose internal lock is re-made in a forked child."""
    made = threading.Event()
    register(made)
    return made


def owned(item: Any) -> bool:
    """Whether the calling thread holds ``item``, a lock made by :func:`rlock`."""
    return bool(item._is_owned())


def held_here() -> bool:
    """Whether the calling thread holds one of obskit's reentrant locks (:func:`rlock`).

    True in a signal handler that interrupted obskit inside such a lock, or in a callback that
    runs under one. Reads no lock itself.
    """
    for ref in tuple(_owned):
        item = ref()
        if item is not None and item._is_owned():  # CPython's RLock (C and Python) has it
            return True
    return False
