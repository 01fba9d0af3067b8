"""PromQL over a :class:`~obskit.replay.store.Store`: the subset obskit's own commands write.

Parsed by precedence climbing into a small tree and evaluated as Prometheus 2.x does: instant
selectors take the latest sample within the lookback (5 minutes) unless it is stale;
``rate``/``increase`` extrapolate as Prometheus' ``extrapolatedRate`` (counter resets included);
one-to-one vector matching on all labels but the name, or ``on (...)``/``ignoring (...)``;
comparisons filter unless ``bool``; ``and``/``or``/``unless`` match on labels.

``scale`` divides every duration written in a query (``[5m]``, the lookback): with ``scale=60`` a
one-minute recording is read as an hour, which is how the demo evaluates rules written for
minutes and hours over a run of seconds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from obskit.replay.parse import (
    Agg,
    Bin,
    Call,
    Neg,
    Num,
    QueryError,
    Sel,
    parse,
    parse_duration,
)
from obskit.replay.store import Labels, Store

__all__ = ["QueryError", "Vector", "evaluate", "instant", "parse", "parse_duration"]

_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}

LOOKBACK = 300.0
Sample = tuple[dict[str, str], float]
Vector = list[Sample]
Matrix = list[tuple[dict[str, str], list[tuple[float, float]]]]
Value = float | Vector | Matrix


def _matches(labels: Labels, matchers: Sequence[tuple[str, str, str]]) -> bool:
    found = dict(labels)
    for label, op, value in matchers:
        have = found.get(label, "")
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have):
            return False
        if op == "!~" and re.fullmatch(value, have):
            return False
    return True


def _drop_name(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"}


def _extrapolated(
    points: list[tuple[float, float]], start: float, end: float, rate: bool
) -> float | None:
    if len(points) < 2:
        return None
    result = points[-1][1] - points[0][1]
    for (_, before), (_, after) in itertools.pairwise(points):
        if after < before:
            result += before
    sampled = points[-1][0] - points[0][0]
    average = sampled / (len(points) - 1)
    to_start, to_end = points[0][0] - start, end - points[-1][0]
    if result > 0 and points[0][1] >= 0:
        to_start = min(to_start, sampled * (points[0][1] / result))
    threshold = average * 1.1
    interval = sampled + (to_start if to_start < threshold else average / 2)
    interval += to_end if to_end < threshold else average / 2
    result *= interval / sampled
    return result / (end - start) if rate else result


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    buckets.sort()
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    counts = [c for _, c in buckets]
    for i in range(1, len(counts)):  # as Prometheus: make the counts monotonic
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = next(i for i, c in enumerate(counts) if c >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    upper = buckets[index][0]
    lower, below = (0.0, 0.0) if index == 0 else (buckets[index - 1][0], counts[index - 1])
    if index == 0 and upper <= 0:
        return upper
    inside = counts[index] - below
    return lower + (upper - lower) * ((rank - below) / inside) if inside > 0 else upper


_OVER_TIME: dict[str, Callable[[list[float]], float]] = {
    "avg_over_time": lambda v: sum(v) / len(v),
    "max_over_time": max,
    "min_over_time": min,
    "sum_over_time": sum,
    "count_over_time": lambda v: float(len(v)),
    "last_over_time": lambda v: v[-1],
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: (
        a / b
        if b
        else (
            math.nan
            if a == 0 or math.isnan(a)
            else math.copysign(math.inf, a) * math.copysign(1, b)
        )
    ),
    "%": lambda a, b: math.fmod(a, b) if b else math.nan,
    "^": lambda a, b: a**b,
    "==": lambda a, b: float(a == b),
    "!=": lambda a, b: float(a != b),
    "<": lambda a, b: float(a < b),
    "<=": lambda a, b: float(a <= b),
    ">": lambda a, b: float(a > b),
    ">=": lambda a, b: float(a >= b),
}


class _Evaluator:
    def __init__(self, store: Store, at: float, scale: float) -> None:
        self.store, self.at, self.scale = store, at, scale

    def run(self, node: Any) -> Value:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Sel):
            return self.select(node)
        if isinstance(node, Neg):
            value = self.run(node.arg)
            return (
                -value
                if isinstance(value, float)
                else [(_drop_name(labels), -v) for labels, v in self.vector(value)]
            )
        if isinstance(node, Agg):
            return self.aggregate(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Bin):
            return self.binary(node)
        raise QueryError(f"cannot evaluate {node!r}")

    def vector(self, value: Value) -> Vector:
        if isinstance(value, float):
            raise QueryError("expected an instant vector, got a scalar")
        return value  # type: ignore[return-value]

    def select(self, node: Sel) -> Value:
        found: list[Any] = []
        candidates = self.store.by_name.get(node.name, []) if node.name else self.store.series
        for labels in candidates:
            if not _matches(labels, node.matchers):
                continue
            if node.range is None:
                value = self.store.at(labels, self.at, LOOKBACK / self.scale)
                if value is not None:
                    found.append((dict(labels), value))
            else:
                points = self.store.window(labels, self.at - node.range / self.scale, self.at)
                if points:
                    found.append((dict(labels), points))
        return found

    def matrix(self, node: Any) -> tuple[Matrix, float]:
        if not isinstance(node, Sel) or node.range is None:
            raise QueryError("expected a range vector such as x[5m]")
        return self.select(node), node.range / self.scale  # type: ignore[return-value]

    def call(self, node: Call) -> Value:
        fn, args = node.fn, node.args
        if fn in ("rate", "increase"):
            matrix, span = self.matrix(args[0])
            out = []
            for labels, points in matrix:
                value = _extrapolated(points, self.at - span, self.at, fn == "rate")
                if value is not None:
                    out.append((_drop_name(labels), value))
            return out
        if fn in _OVER_TIME:
            matrix, _ = self.matrix(args[0])
            reduce = _OVER_TIME[fn]
            return [
                (_drop_name(labels), reduce([v for _, v in points])) for labels, points in matrix
            ]
        if fn == "histogram_quantile":
            q = self.run(args[0])
            groups: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
            for labels, value in self.vector(self.run(args[1])):
                key = tuple(
                    sorted((k, v) for k, v in labels.items() if k not in ("le", "__name__"))
                )
                groups[key].append((float(labels.get("le", "nan")), value))
            return [(dict(key), _quantile(float(q), buckets)) for key, buckets in groups.items()]  # type: ignore[arg-type]
        if fn == "absent":
            if self.vector(self.run(args[0])):
                return []
            selector = args[0]
            found: dict[str, str] = {
                label: value
                for label, op, value in getattr(selector, "matchers", ())
                if op == "=" and label != "__name__"
            }
            return [(found, 1.0)]
        if fn == "vector":
            scalar = self.run(args[0])
            if not isinstance(scalar, float):
                raise QueryError("vector() takes a scalar")
            empty: dict[str, str] = {}
            return [(empty, scalar)]
        raise QueryError(f"function {fn}() is not supported")

    def aggregate(self, node: Agg) -> Vector:
        groups: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
        for labels, value in self.vector(self.run(node.arg)):
            if node.labels is None:
                key: tuple[tuple[str, str], ...] = ()
            elif node.without:
                key = tuple(
                    sorted(
                        (k, v)
                        for k, v in labels.items()
                        if k not in node.labels and k != "__name__"
                    )
                )
            else:
                key = tuple(
                    sorted((k, labels.get(k, "")) for k in node.labels if labels.get(k, ""))
                )
            groups[key].append(value)
        reduce: dict[str, Callable[[list[float]], float]] = {
            "sum": sum,
            "max": max,
            "min": min,
            "avg": lambda v: sum(v) / len(v),
            "count": lambda v: float(len(v)),
        }
        return [(dict(key), reduce[node.op](values)) for key, values in groups.items()]

    def binary(self, node: Bin) -> Value:
        lhs, rhs = self.run(node.lhs), self.run(node.rhs)
        op = node.op
        if op in ("and", "or", "unless"):
            return self.set_operation(op, self.vector(lhs), self.vector(rhs), node)
        compute = _ARITHMETIC[op]
        comparison = op in _COMPARISONS
        if isinstance(lhs, float) and isinstance(rhs, float):
            return compute(lhs, rhs)
        if isinstance(lhs, float) or isinstance(rhs, float):
            out: Vector = []
            vector = self.vector(rhs if isinstance(lhs, float) else lhs)
            scalar = lhs if isinstance(lhs, float) else rhs
            assert isinstance(scalar, float)
            for labels, value in vector:
                a, b = (scalar, value) if isinstance(lhs, float) else (value, scalar)
                result = compute(a, b)
                if comparison and not node.bool_:
                    if result:
                        out.append((labels, value))
                else:
                    out.append((_drop_name(labels), result))
            return out
        right = {
            self.signature(labels, node): (labels, value) for labels, value in self.vector(rhs)
        }
        out = []
        for labels, value in self.vector(lhs):
            match = right.get(self.signature(labels, node))
            if match is None:
                continue
            result = compute(value, match[1])
            keep = dict(labels) if comparison and not node.bool_ else _drop_name(labels)
            if node.on is not None:
                keep = {k: v for k, v in keep.items() if k in node.on}
            else:
                keep = {k: v for k, v in keep.items() if k not in node.ignoring}
            if comparison and not node.bool_:
                if result:
                    out.append((keep, value))
            else:
                out.append((keep, result))
        return out

    @staticmethod
    def signature(labels: dict[str, str], node: Bin) -> tuple[tuple[str, str], ...]:
        if node.on is not None:
            return tuple(sorted((k, labels.get(k, "")) for k in node.on))
        skip = {"__name__", *node.ignoring}
        return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))

    def set_operation(self, op: str, lhs: Vector, rhs: Vector, node: Bin) -> Vector:
        right = {self.signature(labels, node) for labels, _ in rhs}
        if op == "and":
            return [s for s in lhs if self.signature(s[0], node) in right]
        if op == "unless":
            return [s for s in lhs if self.signature(s[0], node) not in right]
        left = {self.signature(labels, node) for labels, _ in lhs}
        return [*lhs, *(s for s in rhs if self.signature(s[0], node) not in left)]


def evaluate(store: Store, query: str | Any, at: float, scale: float = 1.0) -> Value:
    """``query`` at ``at`` (seconds since the epoch); durations in it divided by ``scale``."""
    tree = parse(query) if isinstance(query, str) else query
    return _Evaluator(store, at, scale).run(tree)


def instant(store: Store, query: str | Any, at: float, scale: float = 1.0) -> Vector:
    """``query`` at ``at`` as an instant vector (a scalar as one sample without labels)."""
    result = evaluate(store, query, at, scale)
    if isinstance(result, float):
        return [({}, result)]
    out: Vector = []
    for labels, value in result:
        if not isinstance(value, float):
            raise QueryError("expected an instant vector, got a range vector")
        out.append((labels, value))
    return out
