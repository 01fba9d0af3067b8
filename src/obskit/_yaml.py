"""One YAML writer for everything obskit generates: Collector configs, Prometheus rules, tests,
Alertmanager fragments.

obskit has no YAML dependency at run time; the files it writes are plain data (mappings,
sequences, strings, numbers, booleans, null) in block style. Every scalar is written so that
both YAML 1.1 readers (PyYAML) and YAML 1.2 readers (Go's yaml.v2/v3 in Prometheus,
Alertmanager and the Collector) read back the same value:

- strings are plain only when no reader could take them for anything else (no ``yes``/``on``,
  nothing number-like, no indicator characters); otherwise single-quoted, or a ``|`` literal
  block for multi-line text such as a PromQL expression or a Markdown annotation, or
  double-quoted with escapes when they hold control characters;
- floats always carry a ``.`` (``1.0e-05``, which YAML 1.1 needs to read a float);
- :class:`decimal.Decimal` is written in fixed-point notation, digit for digit: thresholds such
  as ``0.001`` stay exact instead of becoming ``0.0009999999999999432``.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump"]

# Conservative: letters, digits and a few punctuation marks no reader treats specially, not
# starting with a character that could begin a number, an indicator or a special word.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*(?:[ ][A-Za-z0-9_./()-]+)*")
# Words YAML 1.1 reads as booleans or null, in any case.
_SPECIAL = {
    "y",
    "n",
    "yes",
    "no",
    "on",
    "off",
    "true",
    "false",
    "null",
    "nan",
    "inf",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _string(value: str, indent: int) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _SPECIAL and not value.endswith(" "):
        return value
    if _CONTROL.search(value) or "\t" in value:
        return _double_quoted(value)
    if "\n" in value:
        return _literal(value, indent) if _literal_fits(value) else _double_quoted(value)
    return "'" + value.replace("'", "''") + "'"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TO_ESCAPE = re.compile(r'[\\"\t\n\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]')


def _double_quoted(value: str) -> str:
    """A double-quoted scalar: control characters and line breaks as YAML escapes."""
    return '"' + _TO_ESCAPE.sub(_escape, value) + '"'


def _literal_fits(value: str) -> bool:
    """Whether a ``|`` block reads back exactly: no leading blank, no blank-only line, no
    run of trailing newlines (the cases where block indentation or chomping would change it)."""
    body = value[:-1] if value.endswith("\n") else value
    if not body or body[0] in " \n" or body.endswith("\n"):
        return False
    return all(line.strip() or not line for line in body.split("\n"))


def _literal(value: str, indent: int) -> str:
    """A ``|`` block, clipped (one final newline) or stripped (none) as the text has."""
    chomp = "" if value.endswith("\n") else "-"
    pad = " " * (indent + 2)
    lines = value.removesuffix("\n").split("\n")
    return f"|{chomp}\n" + "\n".join(f"{pad}{line}" if line else "" for line in lines)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        sign = "" if exponent.startswith(("-", "+")) else "+"
        text = f"{mantissa}.0e{sign}{exponent}"
    return text


def _scalar(value: Any, indent: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as a YAML number")
        return format(value, "f")
    if isinstance(value, str):
        return _string(value, indent)
    raise TypeError(f"cannot write a {type(value).__name__} as YAML")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"YAML keys written by obskit are strings, not {type(key).__name__}")
    text = _string(key, 0)
    if text.startswith("|"):  # a multi-line key: double-quoted instead of a block
        return _double_quoted(key)
    return text


def _is_collection(value: Any) -> bool:
    return isinstance(value, Mapping) or (
        isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    )


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            head = f"{pad}{_key(key)}:"
            if _is_collection(item) and item:
                out.append(head)
                # Sequences under a key are indented too: the layout Prometheus' docs use.
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{head} {_inline(item, indent)}")
    else:
        for item in value:
            if _is_collection(item) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0][indent + 2 :]}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_inline(item, indent + 2)}")
    return out


def _inline(value: Any, indent: int) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if _is_collection(value):
        return "[]"
    return _scalar(value, indent)


def dump(data: Mapping[str, Any] | Sequence[Any], *, header: str = "") -> str:
    """Block-style YAML for plain data, after ``header`` (each of its lines made a comment)."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    if not _is_collection(data):
        raise TypeError("the top of a YAML document written by obskit is a mapping or a list")
    if not data:
        return comment + ("{}\n" if isinstance(data, Mapping) else "[]\n")
    return comment + "\n".join(_lines(data, 0)) + "\n"
