"""obskit's one YAML writer: what it writes reads back as the same data, in YAML 1.1 and 1.2."""

from __future__ import annotations

import decimal
import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from obskit._yaml import dump

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    _text,
    st.sampled_from(["yes", "No", "on", "OFF", "null", "~", "1h", "5m", "0.5", "1e3", ".inf"]),
    st.sampled_from(["a\nb", " lead\nx", "x\n", "x\n\n", "\n", "a'b", "tab\there", "#c", "a: b"]),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_text, _data, max_size=5))
def test_any_plain_data_reads_back_unchanged(data: dict[str, Any]) -> None:
    """PyYAML reads back exactly the mapping that was written, whatever its strings hold."""
    assert data == yaml.safe_load(dump(data))


@settings(max_examples=200, deadline=None)
@given(st.lists(_data, min_size=1, max_size=5))
def test_a_top_level_list_reads_back_unchanged(data: list[Any]) -> None:
    """A sequence at the top of the document reads back unchanged too."""
    assert data == yaml.safe_load(dump(data))


def test_words_yaml_11_reads_as_booleans_stay_strings() -> None:
    """``yes``, ``on`` and friends are quoted: a YAML 1.1 reader would make them booleans."""
    text = dump({"a": "yes", "b": "on", "c": "No"})
    assert "a: 'yes'\nb: 'on'\nc: 'No'\n" == text


def test_floats_carry_a_dot_so_yaml_11_reads_a_float() -> None:
    """Exponent floats get a mantissa dot (``1.0e-05``); infinities and NaN use YAML's names."""
    assert "x: 1.0e-05\n" == dump({"x": 1e-05})
    loaded = yaml.safe_load(dump({"a": 1e-05, "b": 1e16, "c": math.inf, "d": -math.inf}))
    assert {"a": 1e-05, "b": 1e16, "c": math.inf, "d": -math.inf} == loaded
    assert math.isnan(yaml.safe_load(dump({"n": math.nan}))["n"])


def test_decimals_are_written_digit_for_digit() -> None:
    """A Decimal threshold is written in fixed point exactly as computed, never as a float."""
    assert "threshold: 0.001\n" == dump({"threshold": decimal.Decimal("1E-3")})
    assert "f: 14.40\n" == dump({"f": decimal.Decimal("14.40")})
    with pytest.raises(ValueError):
        dump({"x": decimal.Decimal("NaN")})


def test_multiline_text_is_a_literal_block() -> None:
    """A multi-line PromQL expression is written as a ``|`` block, readable as written."""
    expr = 'sum(rate(x{a="b"}[5m]))\n  /\nsum(rate(y[5m]))'
    text = dump({"groups": [{"rules": [{"expr": expr}]}]})
    assert "expr: |-\n" in text
    assert expr == yaml.safe_load(text)["groups"][0]["rules"][0]["expr"]


def test_header_lines_become_comments() -> None:
    """The header is written as comment lines before the data."""
    assert "# one\n# two\na: 1\n" == dump({"a": 1}, header="one\ntwo\n")


def test_what_yaml_cannot_hold_is_refused() -> None:
    """Bytes, sets and non-string keys raise TypeError instead of writing something else."""
    with pytest.raises(TypeError):
        dump({"a": b"x"})
    with pytest.raises(TypeError):
        dump({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        dump("text")  # type: ignore[arg-type]
