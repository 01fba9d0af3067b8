"""Facts (OpenTelemetry semantic conventions, log levels) that several places must agree on.

One home for each, so the HTTP metric, ``@obskit.red``, the spans (obskit's own and the SDK's),
the outbound client and the log chain never spell them differently:

* :data:`KNOWN_METHODS`: the HTTP methods semconv names; :func:`method_label` reports any other
  as ``_OTHER`` (semconv: method names are case-sensitive, ``get`` is not ``GET``).
* :func:`error_type`: ``error.type`` of an exception — its fully qualified class name
  (``shop.Declined``, ``requests.exceptions.ConnectionError``; a builtin's bare name,
  ``KeyError``), exactly what the OpenTelemetry SDK writes as ``exception.type``.
* :func:`status_error_type`: ``error.type`` of a response that failed without an exception —
  its status code as text, for a server from 500 on, for a client from 400 on.
* :data:`LEVELS`: the log levels a setting may name, with their ``logging`` numbers;
  :data:`METHOD_LEVEL` and :data:`METHOD_LEVEL_NAME`: every structlog logging method (``warn``,
  ``exception``, ``fatal``, ...) with the number and the name of the level it logs at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "KNOWN_METHODS",
    "LEVELS",
    "METHOD_LEVEL",
    "METHOD_LEVEL_NAME",
    "OTHER_METHOD",
    "error_type",
    "method_label",
    "status_error_type",
]

KNOWN_METHODS: Final = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
OTHER_METHOD: Final = "_OTHER"

#: The level names settings accept (``log_level``, ``log_buffer_level``) -> ``logging`` numbers.
# (Plain dicts typed read-only: the log gate looks a method up for every line, and a
# MappingProxyType's get() costs a method call more.)
LEVELS: Final[Mapping[str, int]] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}
#: structlog's logging methods -> the level they log at (its name): the aliases, and the levels.
METHOD_LEVEL_NAME: Final[Mapping[str, str]] = {
    **{name: name for name in LEVELS},
    "msg": "info",
    "warn": "warning",
    "exception": "error",
    "fatal": "critical",
}
#: structlog's logging methods -> the ``logging`` number of their level (the gate compares these).
METHOD_LEVEL: Final[Mapping[str, int]] = {
    method: LEVELS[name] for method, name in METHOD_LEVEL_NAME.items()
}

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


def method_label(method: str) -> str:
    """``http.request.method`` for ``method``: itself when semconv knows it, else ``_OTHER``."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def status_error_type(status: int, *, client: bool = False) -> str:
    """``error.type`` of a response without an exception: the status as text when it failed.

    HTTP semconv: a server's response failed from 500 on (a 4xx is the client's doing); a
    client's request failed from 400 on. ``""`` for a success (and for no status at all).
    """
    if status >= (400 if client else 500):
        return str(status)
    return ""
