"""Build the PromQL that reads obskit's metrics: one place for quoting, windows and shapes.

The SLO rule writer, the canary judge, the incident timeline and the docs all ask Prometheus the
same few questions (a rate, an error ratio, a quantile from buckets, broken down by route or
tenant). They build them here rather than by string formatting of their own, so that label
values are always escaped, durations always valid and histogram bucket edges always spelled as
the exposition spells them. Expressions are plain strings; every function returns one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence

from obskit.metrics import catalogue

__all__ = [
    "Matcher",
    "Selector",
    "absent",
    "aggregate",
    "by_clause",
    "compare",
    "duration",
    "group_left",
    "histogram_quantile",
    "increase",
    "le",
    "one_of",
    "over_time",
    "parse_matchers",
    "parse_selector",
    "quote",
    "rate",
    "ratio",
    "selector",
    "span",
    "sum_by",
]

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_OPS = ("=", "!=", "=~", "!~")
# Largest unit first: Prometheus accepts combined units, but one unit reads best.
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def quote(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal (backslash, quote, newline escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _label_name(name: str) -> str:
    if not _LABEL.fullmatch(name) or (name.startswith("__") and name != "__name__"):
        raise ValueError(f"not a Prometheus label name: {name!r}")
    return name


@dataclasses.dataclass(frozen=True)
class Matcher:
    """One label matcher, ``label op "value"``."""

    label: str
    op: str
    value: str

    def __post_init__(self) -> None:
        _label_name(self.label)
        if self.op not in _OPS:
            raise ValueError(f"not a PromQL matcher operator: {self.op!r}")
        if self.op in ("=~", "!~"):
            # Prometheus anchors the RE2 expression; Python's syntax check catches most typos.
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {self.value!r} ({exc})") from None

    def __str__(self) -> str:
        return f"{self.label}{self.op}{quote(self.value)}"

    def matches(self, value: str) -> bool:
        """Whether a series whose label has ``value`` ("" when absent) is selected."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = re.fullmatch(self.value, value) is not None  # PromQL anchors its expressions
        return found if self.op == "=~" else not found


@dataclasses.dataclass(frozen=True)
class Selector:
    """A series selector: a metric name and label matchers, immutable; ``str()`` renders it."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def __post_init__(self) -> None:
        if not _METRIC.fullmatch(self.metric):
            raise ValueError(f"not a Prometheus metric name: {self.metric!r}")

    def where(self, **equal: str) -> Selector:
        """This selector with ``label="value"`` matchers added."""
        return self.matching(*(Matcher(k, "=", v) for k, v in equal.items()))

    def matching(self, *matchers: Matcher) -> Selector:
        """This selector with ``matchers`` added."""
        return dataclasses.replace(self, matchers=(*self.matchers, *matchers))

    def named(self, metric: str) -> Selector:
        """The same matchers on another metric (``_bucket`` → ``_count`` of one histogram)."""
        return dataclasses.replace(self, metric=metric)

    def __str__(self) -> str:
        if not self.matchers:
            return self.metric
        return f"{self.metric}{{{','.join(map(str, self.matchers))}}}"


def one_of(label: str, values: Sequence[str]) -> Matcher:
    """``label="v"`` for one value, ``label=~"v1|v2"`` (each escaped) for several."""
    if not values:
        raise ValueError(f"no value to match {label} against")
    if len(values) == 1:
        return Matcher(label, "=", values[0])
    return Matcher(label, "=~", "|".join(re.escape(v) for v in values))


_TOKEN = re.compile(
    r"""\s*(?:(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<op>=~|!~|!=|=)|(?P<punct>[{},])"""
    r"""|(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`))"""
)
_ESCAPE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
           "b": "\b", "f": "\f", "v": "\v"}  # fmt: skip


def _unquote(token: str) -> str:
    if token[0] == "`":
        return token[1:-1]
    body, out, k = token[1:-1], [], 0
    while k < len(body):
        char = body[k]
        if char == "\\":
            k += 1
            if body[k] not in _ESCAPE:
                raise ValueError(f"unsupported escape \\{body[k]} in {token}")
            char = _ESCAPE[body[k]]
        out.append(char)
        k += 1
    return "".join(out)


def parse_selector(text: str) -> Selector:
    """A :class:`Selector` from PromQL text: ``metric``, ``metric{a="x",b=~"y|z"}`` (no
    functions, ranges or offsets). ValueError says what is wrong."""
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.strip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise ValueError(
                f'not a series selector: {text!r} (expected metric{{label="value", ...}})'
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(stripped) and stripped[position].isspace():
            position += 1
    expected = f'not a series selector: {text!r} (expected metric{{label="value", ...}})'
    if not tokens or tokens[0][0] != "name":
        raise ValueError(expected)
    metric, rest = tokens[0][1], tokens[1:]
    matchers: list[Matcher] = []
    if rest:
        if rest[0] != ("punct", "{") or rest[-1] != ("punct", "}"):
            raise ValueError(expected)
        body = rest[1:-1]
        k = 0
        while k < len(body):
            part = body[k : k + 3]
            if len(part) < 3 or [t[0] for t in part] != ["name", "op", "string"]:
                raise ValueError(expected)
            matchers.append(Matcher(part[0][1], part[1][1], _unquote(part[2][1])))
            k += 3
            if k < len(body):
                if body[k] != ("punct", ","):
                    raise ValueError(expected)
                k += 1
    return Selector(metric, tuple(matchers))


def selector(metric: str, matchers: Mapping[str, str] | Iterable[Matcher] = ()) -> Selector:
    """A :class:`Selector` for ``metric`` with equality matchers from a mapping, or matchers."""
    if isinstance(matchers, Mapping):
        return Selector(metric).where(**matchers)
    return Selector(metric, tuple(matchers))


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Label matchers alone: ``{a="b", c=~"d.*"}`` (braces optional), as in an arm's selector."""
    body = text.strip()
    if not body:
        return ()
    inner = body[1:-1] if body.startswith("{") and body.endswith("}") else body
    try:
        return parse_selector(f"up{{{inner}}}").matchers
    except ValueError:
        raise ValueError(
            f"not a label matcher list: {text!r}; expected "
            'label="value", label!="value", label=~"re" or label!~"re", comma-separated'
        ) from None


def group_left(expr: str, info: Selector | str, on: Sequence[str]) -> str:
    """``expr * on (on) group_left () info``: keep ``expr``'s series whose targets ``info``
    selects (an info metric's value is 1, so the values are unchanged)."""
    labels = ", ".join(_label_name(n) for n in on)
    return f"{expr} * on ({labels}) group_left () {info}"


def duration(seconds: float) -> str:
    """A PromQL duration for a whole number of seconds, in its largest exact unit (``5m``)."""
    if seconds <= 0 or not math.isfinite(seconds) or seconds != int(seconds):
        raise ValueError(f"a PromQL window is a positive whole number of seconds, not {seconds}")
    whole = int(seconds)
    for unit, size in _UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is a number of 's'")


def span(seconds: int) -> str:
    """A whole number of seconds as a compound PromQL duration (``27m30s``, ``1h``)."""
    if seconds <= 0 or seconds != int(seconds):
        raise ValueError(f"a PromQL window is a positive whole number of seconds, not {seconds}")
    parts, rest = [], int(seconds)
    for unit, size in _UNITS[2:]:  # d, h, m, s: years and weeks read worse in a sum
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def _window(window: float | str) -> str:
    return window if isinstance(window, str) else duration(window)


def rate(series: Selector | str, window: float | str) -> str:
    """``rate(series[window])``; ``window`` in seconds or already a PromQL duration."""
    return f"rate({series}[{_window(window)}])"


def increase(series: Selector | str, window: float | str) -> str:
    """``increase(series[window])``."""
    return f"increase({series}[{_window(window)}])"


def over_time(function: str, series: Selector | str, window: float | str) -> str:
    """``<function>_over_time(series[window])``: ``avg``, ``last``, ``sum``, ``count``, ..."""
    if function not in ("avg", "last", "sum", "count", "min", "max", "absent", "present"):
        raise ValueError(f"not a PromQL *_over_time function: {function!r}")
    return f"{function}_over_time({series}[{_window(window)}])"


def by_clause(labels: Sequence[str]) -> str:
    """`` by (a, b)`` for grouping labels, or nothing when there are none."""
    return f" by ({', '.join(_label_name(n) for n in labels)})" if labels else ""


def sum_by(expr: str, labels: Sequence[str] = ()) -> str:
    """``sum by (labels) (expr)``; a plain ``sum`` without labels."""
    return f"sum{by_clause(labels)} ({expr})"


_AGGREGATIONS = ("sum", "max", "min", "avg", "count")
_COMPARISONS = (">", ">=", "<", "<=", "==", "!=")


def aggregate(op: str, expr: str, labels: Sequence[str] = ()) -> str:
    """``<op> by (labels) (expr)`` for ``sum``, ``max``, ``min``, ``avg`` or ``count``."""
    if op not in _AGGREGATIONS:
        raise ValueError(f"not a PromQL aggregation obskit builds: {op!r}")
    return f"{op}{by_clause(labels)} ({expr})"


def compare(expr: str, op: str, threshold: float | str) -> str:
    """``expr <op> threshold`` (a filter: the series whose value passes)."""
    if op not in _COMPARISONS:
        raise ValueError(f"not a PromQL comparison: {op!r}")
    if isinstance(threshold, float):
        if not math.isfinite(threshold):
            raise ValueError(f"a threshold is a finite number, not {threshold}")
        threshold = repr(threshold)
    return f"{expr} {op} {threshold}"


def absent(series: Selector | str) -> str:
    """``absent(series)``: 1 while no series matches, nothing otherwise (instrumentation gone)."""
    return f"absent({series})"


def ratio(numerator: str, denominator: str) -> str:
    """``(numerator) / (denominator)``: both sides parenthesised, whatever they hold."""
    return f"({numerator}) / ({denominator})"


def le(edge: float) -> str:
    """A histogram bucket edge as the exposition writes its ``le`` label (``0.25``, ``1.0``)."""
    return catalogue.le(edge)  # the spelling obskit's store writes: one definition


def histogram_quantile(
    quantile: float, buckets: Selector, window: float | str, by: Sequence[str] = ()
) -> str:
    """The ``quantile`` of a histogram over ``window``, from its ``_bucket`` series, by ``by``."""
    if not 0 <= quantile <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {quantile}")
    if not buckets.metric.endswith("_bucket"):
        raise ValueError(f"histogram_quantile reads _bucket series, not {buckets.metric}")
    grouped = sum_by(rate(buckets, window), ["le", *by])
    return f"histogram_quantile({quantile:g}, {grouped})"
