"""W3C Trace Context and Baggage, parsed and written by the specifications' own rules.

The SDK's ``TraceContextTextMapPropagator`` is lenient where the W3C Trace Context specification
is not (repeated ``traceparent`` headers, tracestate key grammar, list limits), so obskit parses
the headers itself and hands the SDK only values the specification calls valid:

- exactly one ``traceparent``: lower-case hex, version ``ff`` forbidden, version ``00`` exactly
  55 characters, a later version at least 55 with ``-`` after them; all-zero ids invalid;
- ``tracestate`` only with a valid ``traceparent``, by the rules of :mod:`obskit._tracestate`
  (repeated headers joined in order, the key and value grammar, at most 32 members, one per key,
  the size limits); an invalid one is discarded whole, the ``traceparent`` kept;
- ``baggage`` (W3C Baggage): ``key=value`` members with optional properties; a member that does
  not parse is skipped; at most 64 members and 8192 bytes are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote, unquote

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from obskit import _tracestate

__all__ = [
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "MAX_TRACESTATE_MEMBERS",
    "format_baggage",
    "format_traceparent",
    "format_tracestate",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "remote_context",
]

MAX_TRACESTATE_MEMBERS: Final = _tracestate.MAX_MEMBERS
MAX_BAGGAGE_MEMBERS: Final = 64
MAX_BAGGAGE_BYTES: Final = 8192
# A longer header is refused unread: no valid traceparent of a known version comes near it.
_MAX_TRACEPARENT: Final = 512

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# RFC 9110 token characters for baggage keys; baggage-octet for (percent-encoded) values.
_BAGGAGE_MEMBER = re.compile(
    r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*"
    r"([\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*)[ \t]*(?:;.*)?"
)
_BAGGAGE_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAMPLED_AND_RANDOM: Final = 0x03


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote span context in one ``traceparent`` value, or None when it is not valid."""
    if len(value) < 55 or len(value) > _MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex = match.groups()
    if version == "ff" or (version == "00" and len(value) != 55):
        return None
    if len(value) > 55 and value[55] != "-":
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    # Only the flags this version defines travel on (sampled, random); the rest are reserved.
    flags = TraceFlags(int(flags_hex, 16) & _SAMPLED_AND_RANDOM)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def parse_tracestate(values: Sequence[str]) -> TraceState | None:
    """The tracestate of (possibly repeated) header values; None when it must be discarded."""
    return _tracestate.parse_tracestate(values)


def parse_baggage(values: Sequence[str]) -> dict[str, str]:
    """Baggage entries of (possibly repeated) header values; members that do not parse skipped."""
    entries: dict[str, str] = {}
    budget = MAX_BAGGAGE_BYTES
    for value in values:
        for member in value.split(","):
            budget -= len(member) + 1
            if budget < -1 or len(entries) >= MAX_BAGGAGE_MEMBERS:
                return entries
            match = _BAGGAGE_MEMBER.fullmatch(member)
            if match is None:
                continue
            try:
                entries[match.group(1)] = unquote(match.group(2), errors="strict")
            except UnicodeDecodeError:
                continue
    return entries


def remote_context(
    traceparents: Sequence[str], tracestates: Sequence[str], baggages: Sequence[str]
) -> Context | None:
    """An OpenTelemetry context with the caller's span and baggage, or None without either."""
    ctx: Context | None = None
    if len(traceparents) == 1:  # a repeated traceparent is invalid (W3C Trace Context 3.2)
        span_context = parse_traceparent(traceparents[0])
        if span_context is not None:
            state = parse_tracestate(tracestates) if tracestates else None
            if state is not None:
                span_context = SpanContext(
                    span_context.trace_id,
                    span_context.span_id,
                    is_remote=True,
                    trace_flags=span_context.trace_flags,
                    trace_state=state,
                )
            ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
    if baggages:
        entries = parse_baggage(baggages)
        for key, val in entries.items():
            ctx = otel_baggage.set_baggage(key, val, context=ctx)
    return ctx


format_tracestate = _tracestate.format_tracestate


def format_traceparent(span_context: SpanContext) -> str:
    """The ``traceparent`` value for a (valid) span context."""
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags) & _SAMPLED_AND_RANDOM:02x}"
    )


_BAGGAGE_SAFE = "!#$&'*+-.^_`|~:/?@[]<>{}()"


def format_baggage(entries: Mapping[str, object]) -> str | None:
    """The ``baggage`` value for ``entries`` (values percent-encoded), within the W3C limits."""
    members: list[str] = []
    size = 0
    for key, val in entries.items():
        if not _BAGGAGE_KEY.fullmatch(key):
            continue
        member = f"{key}={quote(str(val), safe=_BAGGAGE_SAFE)}"
        size += len(member) + 1
        if size > MAX_BAGGAGE_BYTES + 1 or len(members) >= MAX_BAGGAGE_MEMBERS:
            break
        members.append(member)
    return ",".join(members) or None
