"""Structured logs: structlog configured once, the stdlib bridged through the same chain."""

from obskit.logs.redaction import REDACTED, Redactor
from obskit.logs.setup import get_logger, processors

__all__ = ["REDACTED", "Redactor", "get_logger", "processors"]
