"""Strict reading of YAML declarations: where every value is, and errors that say so.

PyYAML composes the documents into nodes (so each value keeps its line); this module turns them
into plain values while refusing what a loose loader lets through — a key given twice, a
non-string key, anchors merged into mappings — and keeps numbers exact (``0.999`` is read as
the decimal it says). :class:`At` walks a document: each accessor checks a type and raises
:class:`~obskit.slo.objectives.SpecError` naming the file, the document, the line, the field
path (``spec.objectives[0].target``) and what is accepted.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from obskit.slo.objectives import SpecError

__all__ = ["At", "Document", "guarded", "read"]

Path_ = tuple[str | int, ...]
T = TypeVar("T")


def guarded(at: At, build: Callable[[], T]) -> T:
    """``build()``, its ValueError (or a SpecError of the Python model, which names no file)
    turned into a SpecError about ``at``."""
    try:
        return build()
    except SpecError as exc:
        if str(exc).startswith(f"{at.doc.file}: document "):
            raise  # already placed in the file
        raise at.error(str(exc)) from None
    except ValueError as exc:
        raise at.error(str(exc)) from None


@dataclasses.dataclass
class Document:
    """One YAML document of a file: its value and the line of every path in it."""

    file: str
    number: int
    value: Any
    lines: dict[Path_, int]

    def root(self) -> At:
        """The document's top value."""
        return At(self, (), self.value)


def _render(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(the document)"


@dataclasses.dataclass(frozen=True)
class At:
    """A value at a path of a document."""

    doc: Document
    path: Path_
    value: Any

    def error(self, message: str) -> SpecError:
        """A SpecError about this value."""
        line = self.doc.lines.get(self.path)
        probe = self.path
        while line is None and probe:
            probe = probe[:-1]
            line = self.doc.lines.get(probe)
        where = f"{self.doc.file}: document {self.doc.number}"
        if line is not None:
            where += f", line {line}"
        return SpecError(f"{where}: {_render(self.path)}: {message}")

    def child(self, key: str | int, value: Any) -> At:
        """The value under ``key``."""
        return At(self.doc, (*self.path, key), value)

    def fields(
        self, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
    ) -> dict[str, At]:
        """A mapping's fields; unknown or missing keys are errors naming the accepted ones."""
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping with {', '.join(required + optional)}")
        known = required + optional
        for key in self.value:
            if key not in known:
                raise self.child(key, None).error(
                    f"unknown field (accepted here: {', '.join(known)})"
                )
        for key in required:
            if key not in self.value:
                raise self.error(f"missing required field {key!r}")
        return {k: self.child(k, v) for k, v in self.value.items()}

    def text(self, *, allowed: tuple[str, ...] = ()) -> str:
        """A non-empty string (one of ``allowed`` when given)."""
        if not isinstance(self.value, str) or not self.value:
            wanted = f"one of {', '.join(allowed)}" if allowed else "a non-empty string"
            raise self.error(f"expected {wanted}, not {self.value!r}")
        if allowed and self.value not in allowed:
            raise self.error(f"expected one of {', '.join(allowed)}, not {self.value!r}")
        return self.value

    def number(self) -> Fraction:
        """A number, exactly as written."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, decimal.Decimal)):
            raise self.error(f"expected a number, not {value!r}")
        return Fraction(value)

    def whole(self, minimum: int = 0) -> int:
        """A whole number not below ``minimum``."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"expected a whole number ≥ {minimum}, not {value!r}")
        return value

    def flag(self) -> bool:
        """true or false."""
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, not {self.value!r}")
        return self.value

    def items(self) -> list[At]:
        """A sequence's items."""
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, not {type(self.value).__name__}")
        return [self.child(k, v) for k, v in enumerate(self.value)]

    def texts(self) -> tuple[str, ...]:
        """A string or a list of strings."""
        if isinstance(self.value, str):
            return (self.text(),)
        return tuple(item.text() for item in self.items())

    def mapping_of_text(self) -> dict[str, str]:
        """A mapping of strings to strings."""
        if not isinstance(self.value, dict):
            raise self.error("expected a mapping of names to strings")
        out = {}
        for key, value in self.value.items():
            out[key] = self.child(key, value).text()
        return out


def _scalar(node: Any) -> Any:
    import yaml

    tag = node.tag
    if tag == "tag:yaml.org,2002:float":
        try:
            number = decimal.Decimal(node.value.replace("_", ""))
        except decimal.InvalidOperation:
            number = decimal.Decimal("NaN")
        if not number.is_finite():
            raise ValueError(
                f"line {node.start_mark.line + 1}: {node.value!r} is not a finite number"
            )
        return number
    if tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node)


# A declaration is small: these bound what a hostile or broken file can cost (an alias bomb, a
# self-referencing alias, nesting thousands deep) before the reader refuses it.
MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000


@dataclasses.dataclass
class _Budget:
    values: int = 0


def _convert(node: Any, path: Path_, lines: dict[Path_, int], budget: _Budget) -> Any:
    import yaml

    budget.values += 1
    if budget.values > MAX_VALUES:
        raise ValueError(
            f"line {node.start_mark.line + 1}: more than {MAX_VALUES} values (aliases "
            "repeating themselves?); a declaration is far smaller"
        )
    if len(path) > MAX_DEPTH:
        raise ValueError(
            f"line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep "
            "(an alias that contains itself?)"
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ValueError(
                    f"line {key_node.start_mark.line + 1}: merge keys (<<) are not read"
                )
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise ValueError(
                    f"line {key_node.start_mark.line + 1}: keys are strings, not {key_node.value!r}"
                )
            key = key_node.value
            if key in out:
                raise ValueError(f"line {key_node.start_mark.line + 1}: {key!r} is given twice")
            out[key] = _convert(value_node, (*path, key), lines, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, k), lines, budget) for k, item in enumerate(node.value)]
    return _scalar(node)


def read(path: Path | str) -> Iterator[Document]:
    """The documents of a YAML file (empty documents skipped)."""
    import yaml

    file = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{file}: larger than {MAX_BYTES // (1024 * 1024)} MiB: not a declaration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{file}: cannot read it ({exc})") from None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise SpecError(f"{file}: not valid YAML: nested too deeply") from None
    for number, node in enumerate(nodes, start=1):
        lines: dict[Path_, int] = {}
        try:
            value = _convert(node, (), lines, _Budget())
        except ValueError as exc:
            raise SpecError(f"{file}: document {number}, {exc}") from None
        yield Document(file, number, value, lines)


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's several-line complaint as one line: where, and what."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = f"{problem} ({context})" if context else str(problem)
    return f"{where}not valid YAML: {' '.join(what.split())}"
