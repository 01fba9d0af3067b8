"""Children of multi-process mode: they write prometheus-client's memory-mapped values.

Under gunicorn or ``uvicorn --workers`` every worker writes its samples to files in the shared
directory, and a scrape of any worker sums them; these children have the same interface as the
in-memory ones in ``_store`` so the hot path does not know which mode it is in.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import partial
from typing import Any

__all__ = ["MpCounter", "MpGauge", "MpHistogram"]


class MpCounter:
    """A counter child backed by a shared-file value."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def inc(self, amount: float = 1.0) -> None:
        self._value.inc(amount)


class MpGauge:
    """A gauge child backed by a shared-file value; ``enter``/``leave`` never raise."""

    __slots__ = ("_value", "enter", "leave")

    def __init__(self, value: Any) -> None:
        self._value = value
        self.enter = partial(_safe_inc, value, 1.0)
        self.leave = partial(_safe_inc, value, -1.0)

    def set(self, value: float) -> None:
        self._value.set(value)


def _safe_inc(value: Any, amount: float) -> None:
    # Called bare on the decorator's hot path (no try there): a failing file write must not
    # reach the user's call.
    try:
        value.inc(amount)
    except Exception as exc:
        from obskit import _guard

        _guard.report("metrics.store", exc)


class MpHistogram:
    """A histogram child backed by shared-file values (one per bucket, sum and count)."""

    __slots__ = ("_bounds", "_buckets", "_count", "_sum")

    def __init__(
        self, bounds: tuple[float, ...], buckets: list[Any], total: Any, count: Any | None
    ) -> None:
        self._bounds = bounds
        self._buckets = buckets
        self._sum = total
        self._count = count

    def observe(self, value: float) -> None:
        self._buckets[bisect_left(self._bounds, value)].inc(1.0)
        self._sum.inc(value)
        if self._count is not None:
            self._count.inc(1.0)

    def exemplar(self, value: float, trace_id: int) -> None:
        # prometheus-client's multi-process files have no room for exemplars.
        return
