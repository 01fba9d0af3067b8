"""Value parsers for settings: each accepts the typed value (a keyword argument) or a string
(an environment variable), returns the normalised value, or raises ``ValueError``.

A ``ValueError`` with a message adds that reason to the setting's error (``"no scheme: did you
mean 'http://localhost:4318'?"``). Each parser carries ``kind``: the type its keyword argument
takes in ``obskit.init()``'s signature (generated from the settings table).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from obskit._semconv import LEVELS

__all__ = [
    "Parser",
    "kind_of",
    "parse_address",
    "parse_bool",
    "parse_choice",
    "parse_header",
    "parse_header_names",
    "parse_level",
    "parse_names",
    "parse_number",
    "parse_optional",
    "parse_paths",
    "parse_resource",
    "parse_rules",
    "parse_text",
    "parse_url",
    "typed",
]

Parser = Callable[[Any], Any]
P = TypeVar("P", bound=Parser)


def typed(kind: str, parse: P) -> P:
    """``parse`` marked with the type of its keyword argument in ``init()``'s signature."""
    setattr(parse, "kind", kind)  # noqa: B010 - an attribute on a function object
    return parse


def kind_of(parse: Parser) -> str | None:
    """The keyword argument's type ``parse`` was marked with, or None."""
    kind = getattr(parse, "kind", None)
    return kind if isinstance(kind, str) else None


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError


typed("bool", parse_bool)


def parse_choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError

    return typed("Literal[" + ", ".join(f'"{choice}"' for choice in choices) + "]", parse)


def parse_number(kind: type, low: float, high: float) -> Parser:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value.strip() if isinstance(value, str) else value)
        if not low <= number <= high or number != number:  # NaN fails the last test
            raise ValueError
        return number

    return typed("float" if kind is float else kind.__name__, parse)


def parse_optional(inner: Parser) -> Parser:
    def parse(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none"}):
            return None
        return inner(value)

    return typed(kind_of(inner) or "", parse)


def parse_text(max_len: int = 256) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError
        text = value.strip()
        if len(text) > max_len or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            raise ValueError
        return text

    return typed("str", parse)


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


typed("str | Sequence[str]", parse_names)


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


typed("str | Sequence[str]", parse_logger_names)

parse_level = parse_choice(*LEVELS)


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


typed("str | Sequence[str]", parse_paths)


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


typed("str | Mapping[str, str]", parse_rules)


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


typed("str | Mapping[str, str]", parse_resource)

# RFC 9110 section 5.6.2: a field name is a token, one or more of these characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_TEXT = "letters, digits and !#$%&'*+-.^_`|~, no spaces"


def parse_header(value: Any) -> str:
    """One HTTP header name (an RFC 9110 token), lower-cased."""
    if not isinstance(value, str):
        raise ValueError
    name = value.strip()
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{name!r} is not an HTTP header name ({_TOKEN_TEXT})")
    return name.lower()


typed("str", parse_header)


def parse_header_names(value: Any) -> tuple[str, ...]:
    """A comma-separated string or an iterable of header names -> lower-case tokens, in order."""
    return tuple(parse_header(name) for name in parse_names(value))


typed("str | Sequence[str]", parse_header_names)

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _is_host_name(text: str) -> bool:
    labels = text.removesuffix(".").split(".")
    return len(text) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def parse_address(value: Any) -> str:
    """An address to bind: an IPv4 or IPv6 literal or a host name (``0.0.0.0`` for all)."""
    if not isinstance(value, str):
        raise ValueError
    text = value.strip()
    try:
        ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        if not _is_host_name(text):
            raise ValueError(f"{text!r} is neither an IP address nor a host name") from None
        return text
    return text.removeprefix("[").removesuffix("]")


typed("str", parse_address)


# What a URL without its scheme looks like: host or [v6 address], optional port and path.
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:/\S*)?")


def parse_url(value: Any) -> str:
    """An ``http://`` or ``https://`` URL with a host (an OTLP endpoint)."""
    if not isinstance(value, str):
        raise ValueError
    text = value.strip()
    if len(text) > 4096 or any(ord(ch) <= 32 or ord(ch) == 127 for ch in text):
        raise ValueError("not a URL (it has spaces or control characters)")
    if "://" not in text:
        hint = f": did you mean 'http://{text}'?" if _HOST_PORT.fullmatch(text) else ""
        raise ValueError(f"no scheme{hint or ' (http:// or https://)'}")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"the scheme {parts.scheme!r} is not http or https")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise ValueError("no host")
    del port
    return text


typed("str", parse_url)
