"""Wrapping a library's method so that obskit composes with other instrumentations of it.

obskit wraps third-party methods (the HTTP clients' ``send``) with ``wrapt``, as OpenTelemetry's
contrib instrumentations, Sentry and ddtrace do: each wrapper is a proxy that keeps the wrapped
method's name, signature and descriptor behaviour, so wrappers from several libraries stack on
one method in any order, each seeing the call once.

Undoing must not disturb the others' wrappers either, whichever went on last:

* obskit's wrapper still on top: the method is put back as it was beneath it;
* another library's ``wrapt`` proxy on top of it: obskit's is taken out of the chain beneath that
  proxy, which stays where it is;
* anything else on top (a plain function that closed over obskit's wrapper): obskit's wrapper
  stays in the chain, but passes every call straight through from then on.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import wrapt

__all__ = ["Wrapper", "wrap"]

#: What every ``wrapt`` proxy is an instance of (wrapt 2 moved it to a base class).
_PROXY: Any = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)

#: ``wrapt``'s wrapper signature: the original, the instance it is bound to, positional and
#: keyword arguments; returns what the call returns (a coroutine, for a coroutine method).
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def wrap(owner: type, name: str, wrapper: Wrapper) -> Callable[[], None]:
    """Wrap ``owner.name`` with ``wrapper``; returns the function that undoes it (idempotent)."""
    active = True

    def gate(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if active:
            return wrapper(wrapped, instance, args, kwargs)
        return wrapped(*args, **kwargs)

    proxy = wrapt.FunctionWrapper(inspect.getattr_static(owner, name), gate)
    setattr(owner, name, proxy)

    def undo() -> None:
        nonlocal active
        if not active:
            return
        active = False
        current: Any = owner.__dict__.get(name)
        if current is proxy:
            setattr(owner, name, proxy.__wrapped__)
            return
        while isinstance(current, _PROXY):  # another library wrapped on top: unlink ours
            beneath = current.__wrapped__
            if beneath is proxy:
                current.__wrapped__ = proxy.__wrapped__
                return
            current = beneath

    return undo
