"""Redaction of secrets from log lines, span attributes and captured headers.

Keys are matched case-insensitively, ignoring ``-``/``_``/space, and by containment for the
built-in words (``db_password``, ``X-Api-Key``, ``refresh_token`` all match). Values are scanned
for bearer/basic credentials. Decisions per key are cached (bounded) so the hot path is one dict
lookup per key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["DEFAULT_SENSITIVE", "REDACTED", "Redactor"]

REDACTED: Final = "[REDACTED]"

# Words that mark a key as secret wherever they appear in it (after normalisation).
DEFAULT_SENSITIVE: Final = (
    "authorization",
    "cookie",  # also matches set-cookie
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "sessionid",
    "xapikey",
    "signature",
)

_CREDENTIAL_IN_VALUE = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{6,}")
_MAX_CACHED_KEYS = 4096
_MAX_DEPTH = 16


def _normalise(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(" ", "").replace(".", "")


class Redactor:
    """Replaces secret values by ``[REDACTED]``, at any depth of dicts, lists and tuples."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self._words = tuple(dict.fromkeys([*DEFAULT_SENSITIVE, *map(_normalise, extra_keys)]))
        self._cache: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are redacted."""
        hit = self._cache.get(key)
        if hit is None:
            normal = _normalise(key)
            hit = any(word in normal for word in self._words)
            if len(self._cache) < _MAX_CACHED_KEYS:
                self._cache[key] = hit
        return hit

    def clean_text(self, text: str) -> str:
        """``text`` with bearer/basic/token credentials masked (in any letter case)."""
        if " " not in text and text.isprintable():
            # No whitespace at all (every other whitespace character is unprintable), and the
            # pattern needs some after the scheme: ids, paths, routes end here.
            return text
        # The pattern ignores case: so must the cheap test that usually spares running it.
        folded = text.casefold()
        if ("earer" in folded or "asic" in folded or "oken" in folded) and (
            _CREDENTIAL_IN_VALUE.search(text)
        ):
            return _CREDENTIAL_IN_VALUE.sub(r"\1 " + REDACTED, text)
        return text

    def clean_value(self, value: Any, depth: int = 0) -> Any:
        """``value`` with nested secrets and credentials in text redacted (copied if changed)."""
        if isinstance(value, str):
            return self.clean_text(value)
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return self.clean_mapping(value, depth + 1)
        if isinstance(value, (list, tuple)):
            cleaned = [self.clean_value(item, depth + 1) for item in value]
            if all(a is b for a, b in zip(cleaned, value, strict=True)):
                return value
            return cleaned
        return value

    def clean_mapping(self, mapping: Mapping[Any, Any], depth: int = 0) -> Mapping[Any, Any]:
        """A copy of ``mapping`` with secrets redacted, or ``mapping`` itself when it has none."""
        cache = self._cache
        changed: dict[Any, Any] | None = None
        for key, value in mapping.items():
            secret = cache.get(key)
            if secret is None:
                secret = isinstance(key, str) and self.is_secret_key(key)
            if secret:
                new = REDACTED if value is not None else None
            elif type(value) is str:  # the common case, kept inline
                folded = value.casefold()
                if "earer" not in folded and "asic" not in folded and "oken" not in folded:
                    continue
                new = self.clean_text(value)
            elif isinstance(value, (str, dict, list, tuple)):
                new = self.clean_value(value, depth)
            else:
                continue
            if new is not value:
                if changed is None:
                    changed = {}
                changed[key] = new
        if changed is None:
            return mapping
        return {**mapping, **changed}

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """A structlog processor."""
        cleaned = self.clean_mapping(event_dict)
        return cleaned if isinstance(cleaned, dict) else dict(cleaned)
