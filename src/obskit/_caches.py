"""What obskit remembers between calls, and the one way it is forgotten.

The request path keeps what it derives from the live runtime (the middleware's request plan, the
HTTP and stream families, ``@obskit.red``'s bindings, the SERVER span's shared parts, ...) in
module-level caches that a call reads without asking whether they are current. Each cache
registers how it is emptied, once, at import (:func:`register`); :mod:`obskit._runtime` empties
them all whenever what they were derived from changes (:func:`clear`): ``init()`` building a new
runtime, ``shutdown()`` taking it out, a fork (in the child), ``obskit.testing.reset()``. An
emptied cache fills itself again on its next use.

Two lifetimes:

- :data:`RUNTIME` (the default): derived from the live runtime; emptied on every change of it.
- :data:`PROCESS`: what the application registered that outlives runtimes (the executors, pools
  and queues it asked obskit to track, the loops it named to ``monitor_event_loop``): kept across
  ``init()`` and ``shutdown()``, forgotten only by ``reset()`` (``obskit.testing``).

A cache filled from the old runtime while a reconfiguration empties it must not keep that value:
a fill reads :data:`epoch` before it reads the runtime, and stores with :func:`keep`, which
refuses once a clear has run since. :class:`Slot` is the common case, one value, and does that.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from obskit import _guard, _locks

__all__ = ["PROCESS", "RUNTIME", "UNSET", "Slot", "clear", "keep", "register"]

RUNTIME: Final = "runtime"
PROCESS: Final = "process"

T = TypeVar("T")

# Reentrant, from _locks: shutdown() from a signal handler that interrupted a thread holding it
# sees that (held_here) and hands its clear to another thread instead of waiting on itself.
_lock = _locks.rlock()
_clears: dict[str, list[Callable[[], None]]] = {RUNTIME: [], PROCESS: []}
#: Changes with every :func:`clear` (read it before building a value, hand it to :func:`keep`).
epoch = 0


class _Unset(enum.Enum):
    UNSET = 0


#: What an emptied :class:`Slot` holds (None is a value: "metrics are off" is cached too).
UNSET: Final = _Unset.UNSET


def register(clear_fn: Callable[[], None], lifetime: str = RUNTIME) -> Callable[[], None]:
    """Have ``clear_fn`` called whenever caches of ``lifetime`` are emptied; returns it.

    Called at import, once per cache (a cache made per object, such as a decorated function's
    binding, is emptied by one function its module registers). ``clear_fn`` must only forget:
    no lock but its own, no I/O, nothing that can block.
    """
    if lifetime not in _clears:
        raise ValueError(f"lifetime must be {RUNTIME!r} or {PROCESS!r}, not {lifetime!r}")
    with _lock:
        _clears[lifetime].append(clear_fn)
    return clear_fn


def clear(*lifetimes: str) -> None:
    """Empty every cache of ``lifetimes`` (both when none is named); never raises."""
    global epoch
    with _lock:
        epoch += 1
        clear_fns = [fn for lifetime in lifetimes or (RUNTIME, PROCESS) for fn in _clears[lifetime]]
    for clear_fn in clear_fns:
        try:
            clear_fn()
        except Exception as exc:
            _guard.report("caches", exc)


def keep(since: int, owner: Any, name: str, value: Any) -> bool:
    """Set ``owner.name = value`` unless a clear ran since :data:`epoch` was ``since``."""
    with _lock:
        if since != epoch:
            return False
        setattr(owner, name, value)
        return True


class Slot(Generic[T]):
    """One value derived from the live runtime, emptied with the :data:`RUNTIME` caches.

    :meth:`get` is the value, built on its first use after a clear (None is a value too: "metrics
    are off" is kept like any other). With ``component``, a build that raises is counted as that
    component's internal error and :meth:`get` gives None, keeping nothing: the next call builds
    again.
    """

    __slots__ = ("_build", "component", "value")

    def __init__(self, build: Callable[[], T | None], component: str | None = None) -> None:
        self._build = build
        self.component = component
        self.value: T | _Unset | None = UNSET
        register(self.clear)

    def get(self) -> T | None:
        """The value (the hot path: one attribute read and one identity test once built)."""
        value = self.value
        if value is not UNSET:
            return value
        if self.component is None:
            return self.fill()
        try:
            return self.fill()
        except Exception as exc:
            _guard.report(self.component, exc)
            return None

    def fill(self) -> T | None:
        """Build the value (an exception propagates, nothing is stored) and keep it if current."""
        since = epoch
        value = self._build()
        keep(since, self, "value", value)
        return value

    def clear(self) -> None:
        """Forget the value: the next use builds it again."""
        self.value = UNSET
