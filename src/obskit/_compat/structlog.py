"""structlog's private parts that obskit reads, each found here once, with its fallback.

* :data:`CONTEXT_VARS`: ``structlog.contextvars``' registry of its context variables, one per
  key ever bound. With it a log line reads structlog's bound fields without walking the whole
  context, and a unit of work undoes what it bound by checking only structlog's own variables;
  while it is empty, neither costs more than one check. A structlog release without it gives
  None, and obskit then uses structlog's public (slower) functions, with the same results.
* :data:`BOUND_LOGGER_FIELDS`: the fields of ``structlog.BoundLoggerBase`` that obskit's bound
  logger (a subclass, as structlog's docs describe custom wrapper classes) reads to run its chain
  in one call. They are a layout, not one value: the subclass names them, this module declares
  them, and the suite checks them against the oldest and the newest structlog it allows.
"""

from __future__ import annotations

import contextvars
from typing import Any, Final

from structlog import contextvars as structlog_contextvars

__all__ = ["BOUND_LOGGER_FIELDS", "CONTEXT_VARS"]


def _context_vars() -> dict[str, contextvars.ContextVar[Any]] | None:
    registry = getattr(structlog_contextvars, "_CONTEXT_VARS", None)
    return registry if isinstance(registry, dict) else None


#: structlog's registry of its context variables (None where this structlog has none).
CONTEXT_VARS: Final = _context_vars()

#: What a ``BoundLoggerBase`` keeps: the wrapped logger, the processor chain, the bound context.
BOUND_LOGGER_FIELDS: Final = frozenset({"_logger", "_processors", "_context"})
