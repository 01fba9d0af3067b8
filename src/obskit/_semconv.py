"""Facts from the OpenTelemetry semantic conventions that several signals must agree on.

One home for each, so the HTTP metric, ``@obskit.red``, the spans (obskit's own and the SDK's)
and the outbound client never spell them differently:

* :data:`KNOWN_METHODS`: the HTTP methods semconv names; any other is reported as ``_OTHER``.
* :func:`error_type`: ``error.type`` of an exception — its fully qualified class name
  (``shop.Declined``, ``requests.exceptions.ConnectionError``; a builtin's bare name,
  ``KeyError``), exactly what the OpenTelemetry SDK writes as ``exception.type``.
* :func:`status_error_type`: ``error.type`` of a response that failed without an exception —
  its status code as text, for a server from 500 on, for a client from 400 on.
"""

from __future__ import annotations

from typing import Final

__all__ = ["KNOWN_METHODS", "OTHER_METHOD", "error_type", "status_error_type"]

KNOWN_METHODS: Final = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
OTHER_METHOD: Final = "_OTHER"

# Exception classes seen so far -> their error type. Bounded: a program that makes classes at run
# time gets the name computed afresh (a few attribute reads) past the cap.
_MAX_CACHED: Final = 1024
_names: dict[type[BaseException], str] = {}


def error_type(exc: BaseException) -> str:
    """The semconv ``error.type`` of ``exc``: ``module.QualifiedName``, bare for builtins.

    The same rule as the OpenTelemetry SDK's ``exception.type``, so a span's exception event and
    every ``error_type`` label name an exception alike. Cached per exception class.
    """
    cls = type(exc)
    name = _names.get(cls)
    if name is None:
        module = getattr(cls, "__module__", None)
        qualname = getattr(cls, "__qualname__", None) or cls.__name__
        name = f"{module}.{qualname}" if module and module != "builtins" else qualname
        if len(_names) < _MAX_CACHED:
            _names[cls] = name
    return name


def status_error_type(status: int, *, client: bool = False) -> str:
    """``error.type`` of a response without an exception: the status as text when it failed.

    HTTP semconv: a server's response failed from 500 on (a 4xx is the client's doing); a
    client's request failed from 400 on. ``""`` for a success (and for no status at all).
    """
    if status >= (400 if client else 500):
        return str(status)
    return ""
