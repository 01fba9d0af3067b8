"""Times on the command line and in reports: parsed one way, written one way.

A time is ``now``, ``now-30m`` (``s m h d w``; ``now+5m`` too), seconds since the epoch
(``1718000000.5``) or ISO 8601 (``2026-05-04T12:00:00Z``; without an offset it is UTC).
Reports write UTC, to the second, with the date when it differs from the previous row's.
"""

from __future__ import annotations

import datetime
import re
import time

__all__ = ["clock", "duration_text", "iso", "parse_duration", "parse_time", "parse_window"]

_RELATIVE = re.compile(r"now\s*(?:(?P<sign>[+-])\s*(?P<amount>[0-9smhdw]+))?")
_UTC = datetime.timezone.utc
_PART = re.compile(r"([0-9]+)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in ``30s``, ``5m``, ``1h30m``, ``2d`` (ValueError when it is not one)."""
    value = text.strip()
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {text!r} (a whole number and s, m, h, d or w: 5m, 1h)")
    seconds = sum(int(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    return seconds


def parse_time(text: str, now: float | None = None) -> float:
    """Seconds since the epoch that ``text`` names (ValueError saying what is accepted)."""
    value = text.strip()
    moment = time.time() if now is None else now
    relative = _RELATIVE.fullmatch(value)
    if relative:
        if not relative.group("sign"):
            return moment
        shift = parse_duration(relative.group("amount"))
        return moment - shift if relative.group("sign") == "-" else moment + shift
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (accepted: now, now-30m, seconds since the epoch, "
            "or ISO 8601 such as 2026-05-04T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.timestamp()


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
