"""obskit's one redaction policy: what may leave the process, applied to every signal.

One :class:`Redactor` is built per configuration (:func:`for_settings`, from ``redact``,
``redact_keys`` and ``max_value_length``) and every signal applies it: log lines (the structlog
chain, the stdlib bridge, lines held for a trace), the access line, span names, attributes,
events, links and status, and exemplar labels. It does two things:

- **Secrets** (unless ``redact=False``): a value under a secret key is replaced whole by
  ``[REDACTED]`` (``None`` and booleans are kept: they hold no secret); text anywhere is
  cleaned of secrets with a recognisable shape. The rules are in
  :mod:`obskit.logs.secret_shapes`. Mappings of any type (``dict``, Starlette and httpx
  ``Headers``, requests' ``CaseInsensitiveDict``, multi-valued header containers), header lists
  of ``(name, value)`` pairs in ``str`` or ``bytes``, dataclasses and other objects (through the
  ``repr`` the renderer would print) are walked to a bounded depth.
- **Bounds** (always): text longer than ``max_value_length`` keeps its head and tail around a
  ``...[truncated N chars]...`` marker; containers keep their first :data:`MAX_ITEMS` items;
  keys are cleaned and cut to :data:`MAX_KEY_LENGTH`; one value is walked for a bounded number
  of items, and a cycle ends where it closes (shared references and cycles must not make a walk
  exponential); an object that fails to be read is named instead.

Each replaced secret and each truncated value is counted per signal in
``obskit_redacted_values_total`` / ``obskit_truncated_values_total``. The common case is cheap:
key decisions are cached, and text shorter than 20 characters with no whitespace, ``=`` or
``:`` is returned at once (no secret shape fits in it).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from obskit.logs import redaction_counts
from obskit.logs.redaction_counts import SIGNALS, RedactionCollector, counts
from obskit.logs.redaction_counts import count as _count
from obskit.logs.secret_shapes import (
    MIN_TOKEN_LENGTH,
    REDACTED,
    TextRules,
    key_is_secret,
    normalise,
    redact_segments,
    secret_segments,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_ITEMS",
    "MAX_KEY_LENGTH",
    "REDACTED",
    "SIGNALS",
    "RedactionCollector",
    "Redactor",
    "counts",
    "current",
    "for_settings",
    "reset",
]

#: Default ``max_value_length``: the longest text any signal carries, in characters.
DEFAULT_MAX_LENGTH: Final = 4096
#: Items kept of one list, tuple, set or mapping.
MAX_ITEMS: Final = 1000
_MAX_DEPTH: Final = 16
# Items walked in one value (one log line, one span's attributes): shared references make a small
# object an exponential tree (``a = {}; a["x"] = a["y"] = [a]``), and cycles end where they close.
_MAX_WALK: Final = 10_000
#: Longest key of a mapping kept whole, in characters (keys can come from requests too).
MAX_KEY_LENGTH: Final = 256
_MAX_KEY: Final = MAX_KEY_LENGTH
_MAX_CACHED_KEYS: Final = 4096
_MAX_CACHED_TEXTS: Final = 2048
_MAX_CACHED_TEXT: Final = 512
# Text up to this long is cleaned whole before it is cut; longer text only around the cut,
# with this margin, so a value of megabytes costs what a few KiB cost.
_FULL_SCAN: Final = 64 * 1024
_MARGIN: Final = 1024
_TOO_DEEP: Final = "...[truncated: nested too deep]..."
_TOO_MANY: Final = "...[truncated: too many items]..."
_CYCLE: Final = "...[truncated: cycle]..."
_ATOMS: Final = frozenset({int, float, bool, type(None)})
# Types the renderers print without repr() and that hold no text of the caller's.
_PASSTHROUGH: Final = (
    int,
    float,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    decimal.Decimal,
    enum.Enum,
)
_MULTI_VALUED: Final = ("getlist", "get_all", "getall")
_HEX: Final = "0123456789abcdefABCDEF-"


def _marker(removed: int) -> str:
    return f"...[truncated {removed} chars]..."


def _is_redacted(value: Any) -> bool:
    return type(value) is str and value == REDACTED


# The walk of one value: ``walk[0]`` is how many items may still be visited, the rest are the
# ids of the containers on the current path (at most _MAX_DEPTH of them). A list, not an object:
# a line with one nested mapping pays for a list display, not a constructor call.
_Walk = list[int]


class Redactor:
    """The policy for one configuration; :meth:`view` gives the same policy counted for another
    signal (all views share the rules and the cache of key decisions)."""

    def __init__(
        self,
        extra_keys: Iterable[str] = (),
        *,
        secrets: bool = True,
        max_length: int = DEFAULT_MAX_LENGTH,
        signal: str = "log",
    ) -> None:
        extra = tuple(word for word in dict.fromkeys(map(normalise, extra_keys)) if word)
        self.secrets = secrets
        self.max_length = max(64, max_length)
        self.signal = signal
        self.config = (secrets, tuple(extra_keys), max_length)
        self._extra = extra
        self._cache: dict[Any, bool] = {}
        self._texts: dict[str, str] = {}
        self._routes: dict[str, tuple[int, ...]] = {}
        self._rules = TextRules(self.is_secret_key, extra)
        self._views: dict[str, Redactor] = {signal: self}

    def view(self, signal: str) -> Redactor:
        """This policy, its replacements and truncations counted under ``signal``."""
        found = self._views.get(signal)
        if found is None:
            found = object.__new__(Redactor)
            found.__dict__.update(self.__dict__)
            found.signal = signal
            self._views[signal] = found
        return found

    # --- keys --------------------------------------------------------------------------------

    def is_secret_key(self, key: Any) -> bool:
        """Whether values under ``key`` (a ``str`` or ``bytes`` name) are replaced whole."""
        if type(key) is not str:
            if isinstance(key, (bytes, bytearray)):
                key = bytes(key).decode("latin-1")
            elif isinstance(key, str):
                key = str.__str__(key)
            else:
                return False
        cache = self._cache
        hit = cache.get(key)
        if hit is None:
            hit = self.secrets and key_is_secret(key, self._extra)
            # Only keys written as they are: a hit in clean_mapping means "keep the key".
            if len(key) <= _MAX_KEY and (not self.secrets or not self._rules.clean(key)[1]):
                if len(cache) >= _MAX_CACHED_KEYS:
                    cache.clear()  # a flood of distinct keys: start over rather than grow
                cache[key] = hit
        return hit

    def _key_decision(self, key: Any) -> bool | None:
        """Whether ``key`` of a mapping is secret; None when the key itself must be rewritten
        (too long, holding a secret, or of a type a JSON object cannot have as a key)."""
        kind = type(key)
        if kind is str:
            secret = self.is_secret_key(key)
            return secret if key in self._cache else None
        if kind in _ATOMS:
            return False
        return None

    def _clean_key(self, key: Any) -> Any:
        """``key`` as a line may carry it: text cleaned and cut to :data:`MAX_KEY_LENGTH`."""
        kind = type(key)
        if kind in _ATOMS:
            return key
        if kind is str:
            text = key
        elif isinstance(key, (bytes, bytearray)):
            text = bytes(key).decode("latin-1")
        elif isinstance(key, str):
            text = str.__str__(key)
        else:
            try:
                text = repr(key)
            except Exception:
                text = f"<{kind.__name__} object (repr failed)>"
        if len(text) > _MAX_KEY:
            return self._bounded(text, _MAX_KEY)
        cleaned = self.clean_text(text)
        return key if cleaned is key else cleaned

    # --- text --------------------------------------------------------------------------------

    def clean_text(self, text: str) -> str:
        """``text`` with recognisable secrets replaced and bounded to ``max_length``."""
        size = len(text)
        if size < MIN_TOKEN_LENGTH:
            if " " not in text and "=" not in text and ":" not in text and text.isprintable():
                return text
        elif size > self.max_length:
            return self._bounded(text, self.max_length)
        elif not text.strip(_HEX):
            return text  # ids, hashes, UUIDs: no secret shape is made of these characters
        if not self.secrets:
            return text
        # Texts repeat (events, messages, URLs): each is searched once, its outcome remembered.
        texts = self._texts
        cleaned = texts.get(text)
        if cleaned is None:
            cleaned, found = self._rules.clean(text)
            if not found:
                cleaned = text
            if size <= _MAX_CACHED_TEXT:
                if len(texts) >= _MAX_CACHED_TEXTS:
                    texts.clear()  # a flood of distinct texts: start over rather than grow
                texts[text] = cleaned
        if cleaned is text:
            return text
        _count("redacted", self.signal, 1)
        return cleaned

    def _bounded(self, text: str, limit: int) -> str:
        """``text``, cleaned, cut to ``limit`` around a marker (head and tail kept)."""
        found = 0
        if self.secrets and len(text) <= _FULL_SCAN:
            text, found = self._rules.clean(text)
            if found:
                _count("redacted", self.signal, found)
            if len(text) <= limit:
                return text
        keep = limit - len(_marker(len(text)))
        tail = keep // 4
        head = keep - tail
        if self.secrets and len(text) > _FULL_SCAN:
            start, found_head = self._rules.clean(text[: head + _MARGIN])
            end, found_tail = self._rules.clean(text[len(text) - tail - _MARGIN :])
            start, end = start[:head], end[len(end) - tail :]
            _count("redacted", self.signal, found_head + found_tail)
        else:
            start, end = text[:head], text[len(text) - tail :]
        _count("truncated", self.signal, 1)
        return f"{start}{_marker(len(text) - head - tail)}{end}"

    def clean_path(self, path: str, route: str) -> str:
        """``path`` with each segment ``route`` names as a parameter under a secret name
        replaced (``/reset/{token}``: a reset link's token has no shape of its own)."""
        if not self.secrets or not route:
            return path
        routes = self._routes
        ends = routes.get(route)
        if ends is None:
            ends = secret_segments(route, self.is_secret_key)
            if len(routes) >= _MAX_CACHED_KEYS:
                routes.clear()
            routes[route] = ends
        if not ends:
            return path
        cleaned, found = redact_segments(path, ends)
        _count("redacted", self.signal, found)
        return cleaned

    # --- values ------------------------------------------------------------------------------

    def clean_value(self, value: Any, depth: int = 0, walk: _Walk | None = None) -> Any:
        """``value`` cleaned at any depth (a copy where something changed, else ``value``)."""
        kind = type(value)
        if kind is str:
            return self.clean_text(value)
        if kind in _ATOMS:
            return value
        if depth >= _MAX_DEPTH:
            _count("truncated", self.signal, 1)
            return _TOO_DEEP
        if walk is None:
            walk = [_MAX_WALK]
        if kind is dict or kind is list or kind is tuple:
            key = id(value)
            if key in walk or walk[0] <= 0:  # (an id, an address, is never a small budget)
                return self._stop(key, walk)
            size = len(value)
            walk[0] -= (size if size < MAX_ITEMS else MAX_ITEMS) + 1
            walk.append(key)
            if kind is dict:
                cleaned = self.clean_mapping(value, depth + 1, walk)
            else:
                cleaned = self._sequence(value, depth + 1, walk)
            walk.pop()
            return cleaned
        return self._other(value, depth + 1, walk)

    def clean_mapping(
        self, mapping: Mapping[Any, Any], depth: int = 0, walk: _Walk | None = None
    ) -> Mapping[Any, Any]:
        """A copy of ``mapping`` with secrets redacted and values bounded, or ``mapping`` itself
        when nothing changed. (The loop is the hot path of every log line: kept inline.)"""
        if len(mapping) > MAX_ITEMS:
            return self._as_dict(mapping.items(), depth, walk or [_MAX_WALK])
        cache = self._cache
        changed: dict[Any, Any] | None = None
        for key, value in mapping.items():
            secret = cache.get(key)
            if secret is None:
                secret = self._key_decision(key)
                if secret is None:  # a key written otherwise (cut, cleaned, as text)
                    return self._as_dict(mapping.items(), depth, walk or [_MAX_WALK])
            if secret:
                if value is None or value is True or value is False or _is_redacted(value):
                    continue
                _count("redacted", self.signal, 1)
                new: Any = REDACTED
            elif type(value) is str:
                if (
                    len(value) < MIN_TOKEN_LENGTH
                    and " " not in value
                    and "=" not in value
                    and ":" not in value
                    and value.isprintable()
                ):
                    continue
                new = self.clean_text(value)
            elif type(value) in _ATOMS:
                continue
            else:
                if walk is None:
                    walk = [_MAX_WALK, id(mapping)]
                new = self.clean_value(value, depth, walk)
            if new is not value:
                if changed is None:
                    changed = {}
                changed[key] = new
        if changed is None:
            return mapping
        return {**mapping, **changed}

    def _stop(self, key: int, walk: _Walk) -> str:
        """The marker for a container not walked: a cycle, or the walk's budget spent."""
        _count("truncated", self.signal, 1)
        return _CYCLE if key in walk[1:] else _TOO_MANY

    def _sequence(self, items: Any, depth: int, walk: _Walk, total: int = -1) -> Any:
        over = (total if total >= 0 else len(items)) - MAX_ITEMS
        kept = items[:MAX_ITEMS] if over > 0 else items
        cleaned = [self._item(item, depth, walk) for item in kept]
        if over <= 0 and all(new is old for new, old in zip(cleaned, kept, strict=True)):
            return items
        if over > 0:
            _count("truncated", self.signal, 1)
            cleaned.append(f"...[truncated {over} items]...")
        return tuple(cleaned) if type(items) is tuple else cleaned

    def _item(self, item: Any, depth: int, walk: _Walk) -> Any:
        """One element of a sequence: a ``(name, value)`` pair under a secret name is a header."""
        kind = type(item)
        if (
            (kind is tuple or kind is list)
            and len(item) == 2
            and isinstance(item[0], (str, bytes))
            and self.is_secret_key(item[0])
        ):
            if item[1] is None or _is_redacted(item[1]):
                return item
            _count("redacted", self.signal, 1)
            name = self._clean_key(item[0]) if len(item[0]) > _MAX_KEY else item[0]
            return (name, REDACTED) if kind is tuple else [name, REDACTED]
        return self.clean_value(item, depth, walk)

    def _other(self, value: Any, depth: int, walk: _Walk) -> Any:
        """Any other type, cleaned as the renderer would print it; an object that fails to be
        read (its ``items()``, iteration or ``repr()`` raise) is named instead, and the line or
        span it is part of still goes out."""
        if isinstance(value, str):
            text = str.__str__(value)
            cleaned = self.clean_text(text)
            return value if cleaned is text else cleaned
        if isinstance(value, (bytes, bytearray)):
            if len(value) > self.max_length:
                return self._bounded_bytes(value)
            text = repr(value)
            cleaned = self.clean_text(text)
            return value if cleaned is text else cleaned
        if isinstance(value, _PASSTHROUGH):
            return value
        try:
            return self._container(value, depth, walk)
        except Exception:
            _count("truncated", self.signal, 1)
            return f"<{type(value).__name__} object (unreadable)>"

    def _bounded_bytes(self, value: bytes | bytearray) -> str:
        """Long ``value`` as its printed start and end around a marker: only what is kept is
        written out (``repr()`` of all of it could take four times its size)."""
        marker = f"...[truncated: {len(value)} bytes]..."
        keep = self.max_length - len(marker)
        tail_size = keep // 4
        head = repr(bytes(value[: keep - tail_size]))[: keep - tail_size]
        tail = repr(bytes(value[len(value) - tail_size :]))[-tail_size:]
        if self.secrets:
            head, found_head = self._rules.clean(head)
            tail, found_tail = self._rules.clean(tail)
            _count("redacted", self.signal, found_head + found_tail)
        _count("truncated", self.signal, 1)
        return f"{head[: keep - tail_size]}{marker}{tail[-tail_size:]}"

    def _container(self, value: Any, depth: int, walk: _Walk) -> Any:
        kind = type(value)
        items: Any
        total = -1
        if isinstance(value, Mapping):
            items, mapping = value.items(), True
        elif isinstance(value, (list, set, frozenset)):
            # Read up to the cap (a copy of a huge set would be as big as the set).
            total = len(value)
            items, mapping = list(itertools.islice(value, MAX_ITEMS + 1)), False
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
            mapping = True
        elif callable(getattr(kind, "items", None)) and any(
            hasattr(kind, name) for name in _MULTI_VALUED
        ):
            items, mapping = value.items(), True
        else:
            try:
                text = repr(value)
            except Exception:
                text = f"<{kind.__name__} object (repr failed)>"
            return self.clean_text(text)
        key = id(value)
        if key in walk[1:] or walk[0] <= 0:
            return self._stop(key, walk)
        walk[0] -= (len(items) if hasattr(items, "__len__") else MAX_ITEMS) + 1
        walk.append(key)
        if mapping:
            cleaned = self._as_dict(items, depth, walk)
        else:
            cleaned = self._sequence(items, depth, walk, total)
        walk.pop()
        return cleaned

    def _as_dict(self, items: Iterable[tuple[Any, Any]], depth: int, walk: _Walk) -> dict[Any, Any]:
        """A plain dict of ``items`` cleaned, keys included (repeated names joined as HTTP joins
        headers)."""
        out: dict[Any, Any] = {}
        iterator: Iterator[tuple[Any, Any]] = iter(items)
        for count, (key, value) in enumerate(iterator):
            if count >= MAX_ITEMS:
                _count("truncated", self.signal, 1)
                out["...[truncated]..."] = f"{1 + sum(1 for _ in iterator)} more items"
                break
            name = self._clean_key(key)
            if not self.is_secret_key(key):
                value = self.clean_value(value, depth, walk)
            elif not (value is None or value is True or value is False or _is_redacted(value)):
                _count("redacted", self.signal, 1)
                value = REDACTED
            if name in out and isinstance(out[name], str) and isinstance(value, str):
                value = out[name] if value == out[name] == REDACTED else f"{out[name]}, {value}"
            out[name] = value
        return out

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """A structlog processor."""
        cleaned = self.clean_mapping(event_dict)
        return cleaned if isinstance(cleaned, dict) else dict(cleaned)


# --- the configured policy -------------------------------------------------------------------

_policy: Redactor | None = None
_default: Redactor | None = None


def for_settings(settings: Any) -> Redactor:
    """The policy for ``settings`` (the same object while they stay the same); the current one."""
    global _policy
    config = (
        bool(settings.redact),
        tuple(settings.redact_keys),
        int(getattr(settings, "max_value_length", DEFAULT_MAX_LENGTH)),
    )
    policy = _policy
    if policy is None or policy.config != config:
        policy = _policy = Redactor(config[1], secrets=config[0], max_length=config[2])
    return policy


def current(signal: str = "log") -> Redactor:
    """The configured policy (the defaults before any ``init()``), counted under ``signal``."""
    global _default
    policy = _policy
    if policy is None:
        policy = _default
        if policy is None:
            policy = _default = Redactor()
    return policy.view(signal)


def reset() -> None:
    """Forget the configured policy and the counts (``obskit.testing.reset``)."""
    global _policy
    _policy = None
    redaction_counts.reset()
