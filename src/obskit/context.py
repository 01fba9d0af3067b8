"""Request context: correlation id, tenant id, user id and any other key, on every signal.

The context is one :class:`contextvars.ContextVar` holding a dict that is never mutated in place:
each change sets a new dict. That makes it correct across asyncio tasks (each task starts from a
copy of its creator's context), ``asyncio.to_thread`` (which copies the context) and, through
:func:`carry`, plain threads and executors (which do not).

``bound()`` sets with a token and resets in ``finally``. ``bind()`` sets for the rest of the
current *unit of work*: a request (the middlewares end it when the request ends) or a call of an
``@obskit.red`` function made outside any request (see :func:`end_unit`). What a handler binds
with ``structlog.contextvars.bind_contextvars`` ends with its unit of work as well, although
structlog gives such a bind no token to reset: see :func:`structlog_snapshot`.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, ParamSpec, TypeVar

from structlog import contextvars as _structlog_contextvars

from obskit._compat import structlog as structlog_compat

__all__ = [
    "CORRELATION_ID",
    "NO_SNAPSHOT",
    "STRUCTLOG_VARS",
    "TENANT_ID",
    "USER_ID",
    "bind",
    "bound",
    "carry",
    "clean_id",
    "end_unit",
    "get_context",
    "new_id",
    "restore_structlog",
    "set_fields",
    "set_loop_hook",
    "structlog_snapshot",
    "unbind",
]

P = ParamSpec("P")
R = TypeVar("R")

CORRELATION_ID: Final = "correlation_id"
TENANT_ID: Final = "tenant_id"
USER_ID: Final = "user_id"

_EMPTY: Final[dict[str, Any]] = {}
_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "obskit_context", default=_EMPTY
)


def get_context() -> dict[str, Any]:
    """A copy of the current context's fields."""
    return dict(_fields.get())


def fields() -> Mapping[str, Any]:
    """The current fields without a copy (read-only by convention; the hot path uses this)."""
    return _fields.get()


#: :func:`fields` as the context variable's own getter: no Python frame, for per-line hot paths.
current_fields: Final[Callable[[], Mapping[str, Any]]] = _fields.get


def bind(**kv: Any) -> None:
    """Add fields to the current context until it ends (a request, a task, a thread)."""
    _fields.set({**_fields.get(), **kv})


def unbind(*keys: str) -> None:
    """Remove fields from the current context."""
    current = _fields.get()
    _fields.set({k: v for k, v in current.items() if k not in keys})


# Called by bound(): the event-loop collector sets it to start a monitor in the running loop.
_loop_hook: Callable[[], None] | None = None


def set_loop_hook(hook: Callable[[], None] | None) -> None:
    """Have :func:`bound` call ``hook`` (the event-loop collector's ``ensure_monitor``)."""
    global _loop_hook
    _loop_hook = hook


@contextmanager
def bound(**kv: Any) -> Iterator[None]:
    """Add fields for the duration of a ``with`` block; restored exactly on exit."""
    hook = _loop_hook
    if hook is not None:
        hook()
    token = _fields.set({**_fields.get(), **kv})
    try:
        yield
    finally:
        _fields.reset(token)


def push(kv: dict[str, Any]) -> contextvars.Token[dict[str, Any]]:
    """Start a scope (middleware): set ``kv`` over the current fields; pair with :func:`pop`."""
    current = _fields.get()
    return _fields.set({**current, **kv} if current else kv)


def pop(token: contextvars.Token[dict[str, Any]]) -> None:
    """End a scope started by :func:`push`."""
    _fields.reset(token)


# --- units of work: what is bound inside one ends with it ---

# structlog's registry of its context variables, one per key ever bound (None if a structlog
# release drops it: then its public, slower functions are used; see obskit._compat.structlog).
_STRUCTLOG_VARS: Final = structlog_compat.CONTEXT_VARS
#: The registry itself, for hot paths that check it before calling the functions below.
STRUCTLOG_VARS: Final = _STRUCTLOG_VARS
#: A snapshot taken while structlog had no variable: restoring it unbinds everything.
NO_SNAPSHOT: Final = contextvars.Context()


def structlog_snapshot() -> Any:
    """What structlog's context variables hold now, for :func:`restore_structlog`.

    O(1): a copy of the current context (or nothing, while structlog has no variable at all).
    """
    if _STRUCTLOG_VARS is None:
        return _structlog_contextvars.get_contextvars()
    return contextvars.copy_context() if _STRUCTLOG_VARS else NO_SNAPSHOT


def restore_structlog(snapshot: Any) -> None:
    """Undo every ``bind_contextvars`` made since ``snapshot`` (in this context).

    structlog's binds return tokens that handlers drop, so they are undone by value: each of
    structlog's variables that changed gets its earlier value back, and one created since is set
    to ``...`` (structlog's "not bound"). Costs one check while structlog has no variable.
    """
    registry = _STRUCTLOG_VARS
    if registry is None:
        if _structlog_contextvars.get_contextvars() != snapshot:
            _structlog_contextvars.clear_contextvars()
            _structlog_contextvars.bind_contextvars(**snapshot)
        return
    if not registry:
        return
    for variable in list(registry.values()):  # (a copy: another thread may add a key)
        before = snapshot.get(variable, ...)
        if variable.get(...) is not before:
            variable.set(before)


#: The fields variable's setter, for entry points that open a unit of work inline
#: (``@obskit.red``); pair with :func:`end_unit`.
set_fields: Final = _fields.set


def end_unit(token: contextvars.Token[dict[str, Any]], snapshot: Any) -> None:
    """End a unit of work opened with ``token = set_fields({..., CORRELATION_ID: new_id()})``:
    undo structlog's binds made since ``snapshot``, then restore obskit's fields exactly.

    Never raises: a unit that ended in another context than it began in (only possible by
    entering a Context by hand) is counted, and ends with that context instead.
    """
    try:
        if _STRUCTLOG_VARS or _STRUCTLOG_VARS is None:
            restore_structlog(snapshot)
        _fields.reset(token)
    except Exception as exc:
        from obskit import _guard

        _guard.report("context.scope", exc)


def carry(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` to run in a copy of the *current* context, wherever it is later called.

    ``executor.submit(obskit.carry(work), item)`` and ``Thread(target=obskit.carry(work))`` see
    the caller's correlation id, tenant and active span.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time: copy again so the wrapper is reusable.
        return ctx.copy().run(fn, *args, **kwargs)

    return run


# --- ids from the outside world ---

MAX_ID_LENGTH: Final = 128


_ID_BATCH: Final = 64
# Unused ids of the current batch. ``next()`` on a list iterator is one C call, atomic under the
# GIL, so concurrent threads never receive the same id.
_ids: Iterator[str] = iter(())
_fork_hook = False


def new_id() -> str:
    """A fresh correlation id: 32 lower-case hex digits (128 random bits from ``os.urandom``)."""
    try:
        return next(_ids)
    except StopIteration:
        return _next_batch()


def _next_batch() -> str:
    # One urandom call per 64 ids: the system call costs more than the rest of an id.
    global _ids, _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook = True
        os.register_at_fork(after_in_child=_forget_ids)
    text = os.urandom(16 * _ID_BATCH).hex()
    batch = [text[start : start + 32] for start in range(32, len(text), 32)]
    _ids = iter(batch)
    return text[:32]


def _forget_ids() -> None:
    # A forked child must not hand out the ids its parent will also hand out.
    global _ids
    _ids = iter(())


def clean_id(value: str | bytes | None, max_length: int = MAX_ID_LENGTH) -> str | None:
    """``value`` if it is a safe id (1..max_length printable ASCII, no space), else ``None``.

    Safe ids cannot inject header lines or log lines and cannot blow up label or log sizes.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        if not 0 < len(value) <= max_length:
            return None
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    elif not 0 < len(value) <= max_length:
        return None
    for ch in value:
        if not "!" <= ch <= "~":
            return None
    return value
