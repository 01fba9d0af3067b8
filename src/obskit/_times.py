"""Durations and times on the command line, in declarations and in reports: one grammar each.

**Durations** are what Prometheus writes: a number and a unit, repeated (``30s``, ``5m``,
``1h30m``, ``30d``, ``2w``, ``1y``; units ``ms s m h d w y``). :func:`parse_duration` gives whole
seconds (PromQL windows, SLO periods, rule intervals, the timeline's step);
:func:`parse_seconds` also takes fractions (``1.5s``, ``250ms``) and a bare number of seconds
(``90``), for the canary judge's ``--since`` and ``--step``. Both refuse zero, negative and
non-finite values, and anything beyond :data:`MAX_SECONDS` (a hundred years).

**Times** are ``now``, ``now-30m`` / ``now+5m``, seconds since the epoch (``1718000000.5``) or
ISO 8601 (``2026-05-04T12:00:00Z``, ``2026-05-04T14:00:00+02:00``, ``2026-05-04``; without an
offset it is UTC), between the years 1970 and 9999. Reports write UTC, to the second.
"""

from __future__ import annotations

import datetime
import math
import re
import time
from fractions import Fraction

__all__ = [
    "MAX_SECONDS",
    "clock",
    "duration_text",
    "iso",
    "parse_duration",
    "parse_seconds",
    "parse_time",
    "parse_window",
]

_UTC = datetime.timezone.utc
_UNIT = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
    "w": Fraction(7 * 86400),
    "y": Fraction(365 * 86400),
}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")
_BARE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_RELATIVE = re.compile(r"now\s*(?:(?P<sign>[+-])\s*(?P<amount>[0-9.a-z]+))?")
#: The longest duration accepted: a hundred years (a longer one is a typo, and overflows dates).
MAX_SECONDS = 100 * 365 * 86400
# Times obskit can write back (``datetime`` covers the years 1 to 9999; before 1970 no
# Prometheus sample exists).
_EARLIEST = 0.0
_LATEST = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_UTC).timestamp()


def _amount(text: str, *, fractions: bool, bare: bool, hint: str) -> Fraction:
    value = text.strip()
    if bare and _BARE.fullmatch(value):
        parts = [(value, "s")]
    else:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ValueError(f"not a duration: {text!r} ({hint})")
    if not fractions and any("." in n or u == "ms" for n, u in parts):
        raise ValueError(f"not a duration: {text!r} ({hint})")
    total = sum((Fraction(n) * _UNIT[u] for n, u in parts), Fraction(0))
    if total <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    if total > MAX_SECONDS:
        raise ValueError(f"a duration of at most 100 years, not {text!r}")
    return total


def parse_duration(text: str, hint: str = "a whole number and s, m, h, d or w: 5m, 1h") -> int:
    """Whole seconds in ``30s``, ``5m``, ``1h30m``, ``30d`` (ValueError when it is not one,
    saying ``hint``)."""
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} ({hint})")
    total = _amount(text, fractions=False, bare=False, hint=hint)
    if total.denominator != 1:
        raise ValueError(f"not a whole number of seconds: {text!r}")
    return int(total)


def parse_seconds(text: str | float) -> float:
    """Seconds from ``90``, ``"90s"``, ``"1.5m"``, ``"250ms"``, ``"1h30m"`` (ValueError when it
    is not a positive duration)."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        if not math.isfinite(text) or text <= 0:
            raise ValueError(f"a duration must be positive, not {text!r}")
        if text > MAX_SECONDS:
            raise ValueError(f"a duration of at most 100 years, not {text!r}")
        return float(text)
    try:
        return float(_amount(text, fractions=True, bare=True, hint="use e.g. 90s, 30m, 1h30m"))
    except ValueError as exc:
        if str(exc).startswith("not a positive"):
            raise ValueError(f"a duration must be positive, not {text!r}") from None
        raise


def _bounded(moment: float, text: str) -> float:
    if not (math.isfinite(moment) and _EARLIEST <= moment <= _LATEST):
        raise ValueError(f"not a time between 1970 and 9999: {text!r}")
    return moment


def parse_time(text: str, now: float | None = None) -> float:
    """Seconds since the epoch that ``text`` names (ValueError saying what is accepted)."""
    value = text.strip()
    moment = time.time() if now is None else now
    relative = _RELATIVE.fullmatch(value)
    if relative:
        if not relative.group("sign"):
            return moment
        shift = parse_seconds(relative.group("amount"))
        return _bounded(moment - shift if relative.group("sign") == "-" else moment + shift, text)
    try:
        return _bounded(float(value), text)
    except ValueError as exc:
        if "between 1970" in str(exc):
            raise
    try:
        parsed = datetime.datetime.fromisoformat(re.sub("[Zz]$", "+00:00", value))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (accepted: now, now-30m, seconds since the epoch, "
            "or ISO 8601 such as 2026-05-04T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    try:
        return _bounded(parsed.timestamp(), text)
    except (OverflowError, OSError):
        raise ValueError(f"not a time between 1970 and 9999: {text!r}") from None


def parse_window(start: str, end: str, now: float | None = None) -> tuple[float, float]:
    """``(from, to)`` from their texts; ValueError unless from is before to."""
    moment = time.time() if now is None else now
    begin, finish = parse_time(start, moment), parse_time(end, moment)
    if not begin < finish:
        raise ValueError(f"--from ({start}) must be before --to ({end})")
    return begin, finish


def iso(seconds: float) -> str:
    """ISO 8601 UTC to the second: ``2026-05-04T12:00:00Z``."""
    return datetime.datetime.fromtimestamp(int(seconds), tz=_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock(seconds: float) -> str:
    """The time of day in UTC: ``12:00:00``."""
    return datetime.datetime.fromtimestamp(int(seconds), tz=_UTC).strftime("%H:%M:%S")


def duration_text(seconds: float) -> str:
    """A span of time for people: ``45 s``, ``3 min 20 s``, ``2 h 5 min``."""
    whole = round(abs(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
