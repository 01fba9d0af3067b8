"""The W3C ``tracestate`` list, read, changed and written by the specification's own rules.

Trace Context Level 1 (a W3C Recommendation) §3.3 and Level 2 §3.3, §3.5:

- the header is a list of ``key=value`` members separated by commas; spaces and tabs around a
  member are optional whitespace, and empty members are allowed (and skipped);
- several ``tracestate`` header fields are one list, joined with commas in the order received;
- a key is a simple key (``lcalpha`` then up to 255 of ``a-z 0-9 _ - * /``) or a multi-tenant key
  ``tenant@system`` (tenant: ``lcalpha``/digit then up to 240; system: ``lcalpha`` then up to 13).
  Level 2's draft relaxes this to any key of up to 256 of those characters and ``@``; obskit
  follows the Recommendation, as OpenTelemetry's SDKs do;
- a value is 1 to 256 printable ASCII characters except ``,`` and ``=``, not ending in a space
  (leading spaces are part of the value, trailing ones are whitespace);
- at most 32 members, one per key: a list that breaks any rule is discarded whole (obskit never
  guesses which of two entries for one key is current);
- a changed or added entry goes to the front; past 32 members the rightmost is removed;
- when the list is too long to propagate, whole entries go: those over 128 characters first, then
  from the end. obskit propagates up to :data:`MAX_CHARS` characters (eight times the 512 the
  specification asks every vendor to carry) and refuses a header over :data:`MAX_INPUT_CHARS`
  unread.

OpenTelemetry's ``TraceState`` holds the result, but its own mutations are not used: depending on
the SDK version an update keeps the entry's position, and an addition to a full list is dropped
instead of pushing the rightmost entry out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from opentelemetry.trace import TraceState

__all__ = [
    "LONG_ENTRY",
    "MAX_CHARS",
    "MAX_INPUT_CHARS",
    "MAX_MEMBERS",
    "MAX_VALUE_CHARS",
    "format_tracestate",
    "parse_tracestate",
    "put_first",
    "truncate",
]

MAX_MEMBERS: Final = 32
MAX_VALUE_CHARS: Final = 256
#: The longest combined list obskit stores and propagates (commas included).
MAX_CHARS: Final = 4096
#: Entries longer than this are the first to go when a list must be shortened.
LONG_ENTRY: Final = 128
#: A longer (combined, raw) header is discarded unread: the longest valid list is 32 members of a
#: 256-character key and value, 16,447 characters with its commas.
MAX_INPUT_CHARS: Final = 32 * 1024

_KEY_CHAR = r"[a-z0-9_\-*/]"
_SIMPLE_KEY = rf"[a-z]{_KEY_CHAR}{{0,255}}"
_MULTI_TENANT_KEY = rf"[a-z0-9]{_KEY_CHAR}{{0,240}}@[a-z]{_KEY_CHAR}{{0,13}}"
_NBLK_CHR = r"\x21-\x2b\x2d-\x3c\x3e-\x7e"
_MEMBER = re.compile(
    rf"[ \t]*({_SIMPLE_KEY}|{_MULTI_TENANT_KEY})=([ {_NBLK_CHR}]{{0,255}}[{_NBLK_CHR}])[ \t]*"
)
_KEY = re.compile(rf"{_SIMPLE_KEY}|{_MULTI_TENANT_KEY}")
_VALUE = re.compile(rf"[ {_NBLK_CHR}]{{0,255}}[{_NBLK_CHR}]")
_OWS: Final = " \t"


def parse_tracestate(values: Sequence[str]) -> TraceState | None:
    """The list in the (possibly repeated) header ``values``, shortened to :data:`MAX_CHARS`;
    None when it breaks a rule and must be discarded."""
    joined = ",".join(values)  # (one value is returned as it is)
    if len(joined) > MAX_INPUT_CHARS:
        return None
    pairs: dict[str, str] = {}
    for member in joined.split(","):
        match = _MEMBER.fullmatch(member)
        if match is None:
            if member.strip(_OWS):
                return None
            continue  # an empty or whitespace-only member
        key, value = match.groups()
        if key in pairs or len(pairs) == MAX_MEMBERS:
            return None  # a duplicate key, or a 33rd member
        pairs[key] = value
    items = list(pairs.items())
    if _length(items) > MAX_CHARS:
        items = truncate(items, MAX_CHARS)
    return TraceState(items)


def put_first(state: TraceState | None, key: str, value: str) -> TraceState:
    """``state`` with ``key=value`` added or changed, moved to the front; the rightmost members
    go when that makes 33, or when the list grows past :data:`MAX_CHARS`."""
    if _KEY.fullmatch(key) is None or _VALUE.fullmatch(value) is None:
        raise ValueError(f"not a valid tracestate member: {key!r}={value!r}")
    items = [(key, value)]
    if state:
        items.extend((k, v) for k, v in state.items() if k != key)
    del items[MAX_MEMBERS:]
    if _length(items) > MAX_CHARS:
        items = truncate(items, MAX_CHARS)
    return TraceState(items)


def format_tracestate(state: TraceState | None) -> str:
    """The header value for ``state`` (within :data:`MAX_CHARS`); "" for an empty list, which is
    not sent."""
    if not state:
        return ""
    header = state.to_header()
    if len(header) <= MAX_CHARS:
        return header
    # A list obskit did not parse (made by a user's own sampler, say) can be longer.
    return ",".join(f"{k}={v}" for k, v in truncate(list(state.items()), MAX_CHARS))


def truncate(items: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """Whole entries removed until the list fits ``limit`` characters: entries over
    :data:`LONG_ENTRY` characters first (rightmost first), then from the end."""
    kept = list(items)
    length = _length(kept)
    index = len(kept) - 1
    while length > limit and index >= 0:
        key, value = kept[index]
        if len(key) + 1 + len(value) > LONG_ENTRY:
            del kept[index]
            length = _length(kept)
        index -= 1
    while length > limit and kept:
        kept.pop()
        length = _length(kept)
    return kept


def _length(items: Iterable[tuple[str, str]]) -> int:
    """Characters of the list as written: each ``key=value`` and the commas between them."""
    total = -1
    for key, value in items:
        total += len(key) + len(value) + 2
    return max(total, 0)
