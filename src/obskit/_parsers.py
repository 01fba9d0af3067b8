"""Value parsers for settings: each accepts the typed value (a keyword argument) or a string
(an environment variable), returns the normalised value, or raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "Parser",
    "parse_bool",
    "parse_choice",
    "parse_level",
    "parse_names",
    "parse_number",
    "parse_optional",
    "parse_paths",
    "parse_resource",
    "parse_rules",
    "parse_text",
]

Parser = Callable[[Any], Any]


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError


def parse_choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError

    return parse


def parse_number(kind: type, low: float, high: float) -> Parser:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value.strip() if isinstance(value, str) else value)
        if not low <= number <= high or number != number:  # NaN fails the last test
            raise ValueError
        return number

    return parse


def parse_optional(inner: Parser) -> Parser:
    def parse(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none"}):
            return None
        return inner(value)

    return parse


def parse_text(max_len: int = 256) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError
        text = value.strip()
        if len(text) > max_len or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            raise ValueError
        return text

    return parse


def parse_names(value: Any) -> tuple[str, ...]:
    """A comma-separated string or an iterable of strings -> a tuple of lower-case names."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError
        item = item.strip().lower()
        if item:
            names.append(item)
    return tuple(names)


def parse_logger_names(value: Any) -> tuple[str, ...]:
    """A comma-separated string or an iterable of strings -> a tuple of logger names (their case
    kept: ``PIL`` is not ``pil``)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError
        item = item.strip()
        if item:
            names.append(item)
    return tuple(names)


parse_level = parse_choice("debug", "info", "warning", "error", "critical")


def parse_paths(value: Any) -> tuple[str, ...]:
    """Paths or route templates, comma-separated or an iterable; ``none`` or empty for none.

    Each starts with ``/``, holds no whitespace or control character, and is at most 512
    characters; case is kept (paths are case-sensitive).
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    paths: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError
        item = item.strip()
        if not item or (isinstance(value, str) and item.lower() == "none"):
            continue
        if not item.startswith("/") or len(item) > 512:
            raise ValueError
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in item):
            raise ValueError
        if item not in paths:
            paths.append(item)
    return tuple(paths)


def parse_rules(value: Any) -> tuple[tuple[str, str], ...]:
    """Attribute keep-rules: ``"tenant_id=acme,http.route=/pay"`` or a mapping of key to value."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        items = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            if not sep or not key.strip():
                raise ValueError
            items.append((key.strip(), val.strip()))
    else:
        raise ValueError
    for key, val in items:
        pairs.append((key, val))
    return tuple(pairs)


def parse_resource(value: Any) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``: ``key=value,key2=value2`` (values percent-decoded)."""
    from urllib.parse import unquote

    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if not isinstance(value, str):
        raise ValueError
    attrs: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ValueError
        attrs[unquote(key.strip())] = unquote(val.strip())
    return attrs
