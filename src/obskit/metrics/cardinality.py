"""The cardinality guard: high-cardinality values (tenant, user, ...) reach metric labels bounded.

A guarded value keeps its own label value when it is on the allow-list, or when it earned one of
``top_k`` slots by its traffic; everything else becomes ``__other__`` and is counted in
``obskit_label_overflow_total{label}``. So 100,000 distinct tenants produce at most
``len(allow) + top_k + 1`` label values, and the heaviest tenants are the ones that show.

Traffic is estimated with a bounded frequent-items table (Misra-Gries): at most ``capacity``
candidates; when it is full an unseen value decrements every candidate instead of entering, so
a count never exceeds the value's true count and any value with more than 1/capacity of the
traffic stays in the table. A candidate is admitted once its count reaches ``admit_after``: a
flood of one-off values never gets there, a steady tenant soon does. Admission is permanent (a
label value that appeared stays), which keeps the number of series bounded for the process's
lifetime; a tenant's first request (before admission) counts under ``__other__``.
Memory is O(capacity + top_k).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from obskit import _locks
from obskit.metrics._store import OVERFLOW

__all__ = ["OVERFLOW", "CardinalityGuard"]

DEFAULT_ADMIT_AFTER = 2
MAX_VALUE_LENGTH = 128


class CardinalityGuard:
    """Maps raw values of one label to at most ``len(allow) + top_k + 1`` label values."""

    def __init__(
        self,
        label: str,
        *,
        top_k: int = 20,
        allow: Iterable[str] = (),
        admit_after: int = DEFAULT_ADMIT_AFTER,
        capacity: int | None = None,
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        if top_k < 0 or admit_after < 1:
            raise ValueError("top_k must be >= 0 and admit_after >= 1")
        self.label = label
        self.top_k = top_k
        self.admit_after = admit_after
        self.capacity = capacity if capacity is not None else max(64, 8 * top_k)
        self._on_overflow = on_overflow
        # Values that map to themselves: read without the lock on the hot path.
        self._admitted: dict[str, str] = {value: value for value in allow}
        self._admitted_by_traffic = 0
        # frequent-items table: value -> count (a lower bound of its true count)
        self._candidates: dict[str, int] = {}
        self._lock = _locks.lock()
        self.overflowed = 0

    def __call__(self, value: str | None) -> str:
        """The label value for ``value``: itself when admitted, ``__other__`` otherwise."""
        if value is None:
            return ""
        known = self._admitted.get(value)
        if known is not None:
            return known
        return self._slow(value)

    def admitted(self) -> list[str]:
        """The values that currently map to themselves (allow-list and top-K)."""
        return sorted(self._admitted)

    def _slow(self, raw: object) -> str:
        if not raw:
            return ""
        value = raw if isinstance(raw, str) else str(raw)  # an int id's text is its label value
        with self._lock:
            known = self._admitted.get(value)
            if known is not None:
                return known
            if (
                self._admitted_by_traffic < self.top_k
                and len(value) <= MAX_VALUE_LENGTH
                and self._observe(value)
            ):
                self._candidates.pop(value, None)
                self._admitted[value] = value
                self._admitted_by_traffic += 1
                return value
            self.overflowed += 1
        if self._on_overflow is not None:
            self._on_overflow(self.label)
        return OVERFLOW

    def _observe(self, value: str) -> bool:
        """Count one occurrence; True when its count reaches ``admit_after``."""
        candidates = self._candidates
        count = candidates.get(value)
        if count is not None:
            candidates[value] = count + 1
            return count + 1 >= self.admit_after
        if len(candidates) < self.capacity:
            candidates[value] = 1
            return self.admit_after <= 1
        # Table full: decrement every candidate and drop those reaching zero. Each decrement
        # cancels an earlier increment, so this is amortised O(1) per call.
        for key, seen in list(candidates.items()):
            if seen <= 1:
                del candidates[key]
            else:
                candidates[key] = seen - 1
        return False
