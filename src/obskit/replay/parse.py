"""Parsing the PromQL subset :mod:`obskit.replay.promql` evaluates, into a small tree.

Precedence climbing over PromQL's binary operators (``or`` < ``and``/``unless`` < comparisons <
``+ -`` < ``* / %`` < ``^``, right-associative), with ``bool``, ``on (...)`` and
``ignoring (...)``; aggregations with ``by``/``without`` before or after their argument; function
calls; selectors with matchers and a range. Subqueries, ``offset``, ``@`` and ``group_left`` are
refused with :class:`QueryError`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = [
    "Agg",
    "Bin",
    "Call",
    "Neg",
    "Num",
    "QueryError",
    "Sel",
    "parse",
    "parse_duration",
]


class QueryError(ValueError):
    """A query this evaluator cannot parse or does not support."""


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|Inf|NaN)(?![A-Za-z_:])"
    r"|(?P<dur>\[[0-9a-z]+\])"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=(){},]))"
)
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "^": 6,
}
_AGGREGATIONS = {"sum", "max", "min", "avg", "count"}


def parse_duration(text: str) -> float:
    """Seconds in a PromQL duration (``1h57m30s``)."""
    if not text or _DURATION.sub("", text):
        raise QueryError(f"not a duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text))


@dataclasses.dataclass(frozen=True)
class Num:
    value: float


@dataclasses.dataclass(frozen=True)
class Sel:
    name: str
    matchers: tuple[tuple[str, str, str], ...]
    range: float | None = None


@dataclasses.dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Agg:
    op: str
    labels: tuple[str, ...] | None
    without: bool
    arg: Any


@dataclasses.dataclass(frozen=True)
class Bin:
    op: str
    lhs: Any
    rhs: Any
    bool_: bool = False
    on: tuple[str, ...] | None = None
    ignoring: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Neg:
    arg: Any


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                if text[position:].strip() == "":
                    break
                if re.match(r"\s*\[[^\]]*:", text[position:]):
                    raise QueryError(f"subqueries are not supported: {text!r}")
                raise QueryError(f"cannot read {text[position : position + 20]!r} in {text!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else ("end", "")

    def take(self, expected: str | None = None) -> str:
        _kind, value = self.peek()
        if expected is not None and value != expected:
            raise QueryError(
                f"expected {expected!r}, found {value or 'the end'!r} in {self.text!r}"
            )
        self.index += 1
        return value

    def labels(self) -> tuple[str, ...]:
        self.take("(")
        names: list[str] = []
        while self.peek()[1] != ")":
            names.append(self.take())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return tuple(names)

    def expr(self, min_precedence: int = 1) -> Any:
        left = self.unary()
        while True:
            op = self.peek()[1]
            precedence = _PRECEDENCE.get(op)
            if precedence is None or precedence < min_precedence or self.peek()[0] == "str":
                return left
            self.take()
            bool_ = False
            on: tuple[str, ...] | None = None
            ignoring: tuple[str, ...] = ()
            if self.peek()[1] == "bool":
                self.take()
                bool_ = True
            if self.peek()[1] in ("on", "ignoring"):
                which = self.take()
                names = self.labels()
                on, ignoring = (names, ()) if which == "on" else (None, names)
            if self.peek()[1] in ("group_left", "group_right"):
                raise QueryError(f"{self.peek()[1]} is not supported here: {self.text!r}")
            right = self.expr(precedence if op == "^" else precedence + 1)
            left = Bin(op, left, right, bool_, on, ignoring)

    def unary(self) -> Any:
        if self.peek()[1] == "-":
            self.take()
            return Neg(self.unary())
        if self.peek()[1] == "+":
            self.take()
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.peek()
        if kind == "num":
            self.take()
            return Num(float(value.replace("Inf", "inf").replace("NaN", "nan")))
        if kind == "str":
            self.take()
            return value[1:-1]
        if value == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            if self.peek()[0] == "dur":
                raise QueryError(f"subqueries are not supported: {self.text!r}")
            return inner
        if value == "{":
            return self.selector("")
        if kind != "id":
            raise QueryError(f"unexpected {value or 'end'!r} in {self.text!r}")
        self.take()
        if value in _AGGREGATIONS:
            labels, without = None, False
            if self.peek()[1] in ("by", "without"):
                without = self.take() == "without"
                labels = self.labels()
            self.take("(")
            arg = self.expr()
            self.take(")")
            if self.peek()[1] in ("by", "without"):
                without = self.take() == "without"
                labels = self.labels()
            return Agg(value, labels, without, arg)
        if self.peek()[1] == "(":
            self.take()
            args = []
            while self.peek()[1] != ")":
                args.append(self.expr())
                if self.peek()[1] == ",":
                    self.take()
            self.take(")")
            return Call(value, tuple(args))
        return self.selector(value)

    def selector(self, name: str) -> Sel:
        matchers: list[tuple[str, str, str]] = []
        if self.peek()[1] == "{":
            self.take()
            while self.peek()[1] != "}":
                label = self.take()
                op = self.take()
                kind, text = self.peek()
                if kind != "str" or op not in ("=", "!=", "=~", "!~"):
                    raise QueryError(f"bad matcher {label}{op}{text} in {self.text!r}")
                self.take()
                matchers.append((label, op, bytes(text[1:-1], "utf-8").decode("unicode_escape")))
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
        if name:
            matchers.insert(0, ("__name__", "=", name))
        range_ = None
        if self.peek()[0] == "dur":
            range_ = parse_duration(self.take()[1:-1])
        if self.peek()[1] in ("offset", "@"):
            raise QueryError(f"offset and @ are not supported: {self.text!r}")
        return Sel(name, tuple(matchers), range_)


_CACHE: dict[str, Any] = {}


def parse(text: str) -> Any:
    """The tree of one query (cached)."""
    tree = _CACHE.get(text)
    if tree is None:
        parser = _Parser(text)
        tree = parser.expr()
        if parser.peek()[0] != "end":
            raise QueryError(f"unexpected {parser.peek()[1]!r} in {text!r}")
        _CACHE[text] = tree
    return tree
