"""Chatty libraries' loggers held at the service's level, so their debug lines never flood a trace.

With debug lines held per trace (``log_buffer_level``), the root logger lets debug records
through, and an HTTP client, urllib3, h2 or asyncio write dozens of them per request: a kept
trace's flushed lines would be mostly theirs. obskit sets each logger named in
``log_quiet_loggers`` to ``log_level`` — their records below it are then not even created — but
only a logger whose level nobody chose (``NOTSET``): a level the application set, before or after
``init()``, is left alone. ``unconfigure()`` puts back what obskit changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["hold_at", "release"]

# Logger name -> the level obskit set on it (so that a later change by the application is seen).
_held: dict[str, int] = {}


def hold_at(names: Sequence[str], level: int) -> None:
    """Set each logger in ``names`` to ``level`` unless its level was chosen by someone else;
    loggers obskit held before but that are no longer named are released."""
    for name in [n for n in _held if n not in names]:
        _release_one(name)
    for name in names:
        logger = logging.getLogger(name)
        ours = _held.get(name)
        if logger.level == logging.NOTSET or (ours is not None and logger.level == ours):
            logger.setLevel(level)
            _held[name] = level
        else:
            _held.pop(name, None)


def release() -> None:
    """Give every logger obskit set back its ``NOTSET`` level (unless it was changed since)."""
    for name in list(_held):
        _release_one(name)


def _release_one(name: str) -> None:
    ours = _held.pop(name)
    logger = logging.getLogger(name)
    if logger.level == ours:
        logger.setLevel(logging.NOTSET)
