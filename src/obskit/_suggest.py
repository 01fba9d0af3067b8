"""Names for typos: the setting a mistyped keyword or environment variable most likely meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["mistyped_variables", "unknown_keywords"]


def unknown_keywords(names: Iterable[str], known: Sequence[str]) -> str:
    """The message for unknown ``init()`` keywords, each with the nearest known one if any."""
    parts = []
    for name in sorted(names):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        parts.append(f"unknown setting {name!r}{hint}")
    listing = (
        ""
        if all("did you mean" in part for part in parts)
        else ("; known: " + ", ".join(sorted(known)))
    )
    return f"obskit.init(): {'; '.join(parts)}{listing}"


def mistyped_variables(env: Mapping[str, str], known: Sequence[str]) -> list[str]:
    """Notices for ``OBSKIT_*`` variables that are no setting but nearly the name of one."""
    own = [var for var in known if var.startswith("OBSKIT_")]
    notices = []
    for var in sorted(v for v in env if v.startswith("OBSKIT_") and v not in own):
        close = difflib.get_close_matches(var, own, n=1, cutoff=0.85)
        if close:
            notices.append(
                f"environment variable {var} is not an obskit setting — did you mean {close[0]}?"
            )
    return notices
