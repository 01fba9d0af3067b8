"""The cardinality guard: high-cardinality values (tenant, user, ...) reach metric labels bounded.

A guarded value keeps its own label value when it is on the allow-list, or while it holds one of
``top_k`` slots earned by its *recent* traffic; everything else becomes ``__other__`` and is
counted in ``obskit_label_overflow_total{label}``. So 100,000 distinct tenants produce at most
``len(allow) + top_k + 1`` label values at a time, and the heaviest tenants are the ones that
show.

A tenant header is untrusted input: a handful of requests with made-up ids must not take the
slots for good. So a slot is held by sustained traffic, not by having come first:

* **Admission.** While a slot is free, a value is admitted from its ``admit_after``-th
  occurrence (a flood of one-off ids never gets there; a real tenant does at once).
* **Counting.** Every call for an admitted value bumps a C-level counter (``itertools.count``,
  atomic under the GIL, no lock); calls for other values go through a bounded frequent-items
  table (Misra-Gries, ``capacity`` entries, under the lock), whose counts never exceed a value's
  true count.
* **Review.** Once the slots are full, every ``capacity`` calls that fold into ``__other__``
  trigger a review: each admitted value's score is its calls since the previous review plus half
  its previous score (an exponentially decayed count over review windows), and each
  candidate's is its table count (halved at every review). A candidate whose score is at least
  ``admit_after`` and more than twice the weakest admitted value's takes its slot; the evicted
  value folds into ``__other__`` from then on (and may earn a slot again). A newcomer keeps its
  score, so it is not the next one out.
* **Churn.** Each eviction starts new series, so evictions are bounded: at most a quarter of the
  slots per review, and at most ``top_k`` per ``turnover_s`` seconds (a token bucket), counted in
  ``obskit_label_evictions_total{label}``.

Cost: an admitted value is one dict lookup and one counter increment; any other value is the
table update under an uncontended lock, amortised O(1) (a review costs O(capacity + top_k) and
happens at most once per ``capacity`` such calls). Memory is O(capacity + top_k). The lock is
re-made in a forked child, like every lock obskit owns (:mod:`obskit._locks`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

from obskit import _live, _locks
from obskit.metrics._store import OVERFLOW

__all__ = ["OVERFLOW", "CardinalityGuard", "LabelGuard", "label_guard"]

DEFAULT_ADMIT_AFTER = 2
MAX_VALUE_LENGTH = 128
# A whole slot set may turn over at most once in this long (the eviction token bucket).
DEFAULT_TURNOVER_S = 600.0
# A challenger must beat the weakest admitted value by this factor (no flapping between equals).
HYSTERESIS = 2.0


def _count_value(counter: itertools.count[int]) -> int:
    # ``itertools.count`` has no public accessor; its repr is ``count(N)``.
    return int(repr(counter)[6:-1])


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
        turnover_s: float = DEFAULT_TURNOVER_S,
        on_overflow: Callable[[str], None] | None = None,
        on_evict: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if top_k < 0 or admit_after < 1 or turnover_s <= 0:
            raise ValueError("top_k must be >= 0, admit_after >= 1 and turnover_s > 0")
        self.label = label
        self.top_k = top_k
        self.admit_after = admit_after
        self.capacity = capacity if capacity is not None else max(64, 8 * top_k)
        self.turnover_s = turnover_s
        self._on_overflow = on_overflow
        self._on_evict = on_evict
        self._clock = clock
        # Values that map to themselves -> the bump of their call counter. Read without the lock
        # on the hot path; changed only under it. The allow-list shares one counter, never read.
        shared = itertools.count().__next__
        self._admitted: dict[str, Callable[[], object]] = dict.fromkeys(allow, shared)
        # Values admitted by traffic: their counter, the count at the last review, their score.
        self._counters: dict[str, itertools.count[int]] = {}
        self._last: dict[str, int] = {}
        self._scores: dict[str, float] = {}
        # Frequent-items table of the other values: value -> count (a lower bound).
        self._candidates: dict[str, float] = {}
        self._folded_since_review = 0
        self._tokens = float(top_k)
        self._refilled_at = clock()
        # Re-made in a forked child (obskit._locks): a thread of the parent may hold it at the fork.
        self._lock = _locks.lock()
        self.overflowed = 0
        self.evicted = 0

    def __call__(self, value: str | None) -> str:
        """The label value for ``value``: itself when admitted, ``__other__`` otherwise."""
        if value is None:
            return ""
        bump = self._admitted.get(value)
        if bump is not None:
            bump()
            return value
        return self._slow(value)

    def admitted(self) -> list[str]:
        """The values that currently map to themselves (allow-list and top-K)."""
        return sorted(self._admitted)

    # --- the slow path: values without a slot ----------------------------------------------------

    def _slow(self, raw: object) -> str:
        if not raw:
            return ""
        value = raw if isinstance(raw, str) else str(raw)  # an int id's text is its label value
        evicted: list[str] = []
        with self._lock:
            if value in self._admitted:
                return value
            if len(value) <= MAX_VALUE_LENGTH:
                count = self._observe(value)
                if len(self._counters) < self.top_k:
                    if count >= self.admit_after:
                        self._admit(value, count)
                        return value
                else:
                    self._folded_since_review += 1
                    if self._folded_since_review >= self.capacity:
                        evicted = self._review()
            won = value in self._admitted  # this very value took a slot in the review
            if not won:
                self.overflowed += 1
        if self._on_evict is not None:
            for _ in evicted:
                self._on_evict(self.label)
        if won:
            return value
        if self._on_overflow is not None:
            self._on_overflow(self.label)
        return OVERFLOW

    def _observe(self, value: str) -> float:
        """Count one occurrence in the table; the value's count (0 when it could not enter)."""
        candidates = self._candidates
        count = candidates.get(value)
        if count is not None:
            candidates[value] = count + 1
            return count + 1
        if len(candidates) < self.capacity:
            candidates[value] = 1
            return 1
        # Table full: decrement every candidate and drop those reaching zero. Each decrement
        # cancels an earlier increment, so this is amortised O(1) per call.
        for key, seen in list(candidates.items()):
            if seen <= 1:
                del candidates[key]
            else:
                candidates[key] = seen - 1
        return 0

    def _admit(self, value: str, score: float) -> None:
        # Called with the lock held.
        self._candidates.pop(value, None)
        counter = itertools.count()
        self._counters[value] = counter
        self._last[value] = 0
        self._scores[value] = score
        self._admitted[value] = counter.__next__

    def _review(self) -> list[str]:
        """Score the window that ended, let heavier candidates take slots; the values evicted."""
        # Called with the lock held.
        self._folded_since_review = 0
        for value, counter in self._counters.items():
            now = _count_value(counter)
            self._scores[value] = self._scores[value] / 2 + (now - self._last[value])
            self._last[value] = now
        self._refill()
        evicted: list[str] = []
        budget = min(int(self._tokens), max(1, self.top_k // 4))
        if budget > 0 and self._candidates:
            challengers = sorted(self._candidates.items(), key=lambda item: -item[1])
            holders = sorted(self._scores.items(), key=lambda item: item[1])
            for (challenger, score), (holder, held) in zip(challengers, holders, strict=False):
                if len(evicted) >= budget or score < self.admit_after:
                    break
                if score <= HYSTERESIS * held:
                    break
                self._evict(holder)
                self._admit(challenger, score)
                evicted.append(holder)
            self._tokens -= len(evicted)
            self.evicted += len(evicted)
        # The table's counts decay like the scores: what counts is traffic of recent windows.
        for key, seen in list(self._candidates.items()):
            if seen < 2:
                del self._candidates[key]
            else:
                self._candidates[key] = seen / 2
        return evicted

    def _evict(self, value: str) -> None:
        # Called with the lock held. The hot path may still bump the old counter once: harmless.
        del self._admitted[value]
        del self._counters[value], self._last[value], self._scores[value]

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._refilled_at = now
        self._tokens = min(float(self.top_k), self._tokens + elapsed * self.top_k / self.turnover_s)


class LabelGuard:
    """The guard of the live runtime for one label, looked up at each call (``label_guard``)."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        if not isinstance(label, str) or not label:
            raise ValueError(f"label_guard() needs a label name (a non-empty str), not {label!r}")
        self.label = label

    def __call__(self, value: str | None) -> str:
        """The label value for ``value``: itself while admitted, else ``__other__``."""
        component = _live.metrics()
        if component is None:
            return OVERFLOW if value else ""
        return component.guard(self.label)(value)

    def __repr__(self) -> str:
        return f"obskit.label_guard({self.label!r})"


def label_guard(label: str) -> LabelGuard:
    """The cardinality guard for ``label`` (``user_id``, ...) on metric families of your own.

    ``guard(value)`` is the value itself while it is on ``label_allow`` or holds one of the
    ``label_top_k`` slots its traffic earned, and ``__other__`` otherwise (counted in
    ``obskit_label_overflow_total{label}``): the same guard, per label name, that obskit's own
    families use (``tenant_id`` is the HTTP families'). Take it anywhere, also at import time: each
    call uses the runtime live at that moment, so it follows a re-``init()`` and a forked worker.
    Before ``init()``, or with metrics off, every value is ``__other__``: nothing unguarded ever
    reaches a label.
    """
    return LabelGuard(label)
