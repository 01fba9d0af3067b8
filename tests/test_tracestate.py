"""W3C Trace Context ``tracestate``, one table row per rule of the specification, in and out.

Citations: "L1" is Trace Context Level 1 (W3C Recommendation, 2020), "L2" Trace Context Level 2
(Candidate Recommendation Draft); section numbers and headings are theirs. Each row is checked by
the parser and, through two real uvicorn services on loopback (the first calling the second with
httpx), on the wire: what the second service received is what obskit propagated, and the first
service's kept span carries obskit's ``ot`` entry at the front of that list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import TraceState

from obskit import _tracestate
from obskit.tracing import policies
from obskit.web import propagation
from server_support import Service, serve

# Every character a key may hold, and every character a value may hold (a leading space too).
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


def _members(count: int, width: int = 1, start: int = 0) -> list[str]:
    """``count`` distinct members ``kNN=vvv`` whose values are ``width`` characters."""
    return [f"k{n:02d}={'v' * width}" for n in range(start, start + count)]


def _long(n: int) -> str:
    """A 135-character member: over the 128 of "remove long entries first"."""
    return f"k{n:02d}=" + "x" * 131


@dataclass(frozen=True)
class Row:
    """One rule: the headers a caller sends, and the tracestate obskit must propagate.

    ``expected`` None: the tracestate is discarded (no header goes out); "" valid but empty (no
    header goes out either). ``exported``: the first service's kept span's list, when it is not
    ``ot=th:0`` in front of ``expected``.
    """

    id: str
    cite: str
    tracestates: tuple[str, ...]
    expected: str | None
    traceparents: tuple[str, ...] | None = None  # default: one valid traceparent
    name: str = "tracestate"
    exported: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


ROWS = [
    # §3.3.1.1 tracestate Header Field Values
    Row(
        "several-headers-combine",
        "L1 §3.3.1.1: several tracestate fields are combined into one list, in order (RFC 7230)",
        ("foo=1,bar=2", "rojo=1,congo=2", "baz=3"),
        "foo=1,bar=2,rojo=1,congo=2,baz=3",
    ),
    Row(
        "empty-field-after",
        "L1 §3.3.1.1: empty list members are allowed (an empty field among several)",
        ("foo=1", ""),
        "foo=1",
    ),
    Row(
        "empty-field-before",
        "L1 §3.3.1.1: empty list members are allowed (an empty field among several)",
        ("", "foo=1"),
        "foo=1",
    ),
    Row(
        "only-empty",
        "L1 §3.3.1.1: vendors MUST accept empty tracestate headers but SHOULD avoid sending them",
        ("", " , \t"),
        "",
    ),
    Row(
        "ows-around-members",
        "L1 §3.3.1.1: spaces and horizontal tabs surrounding list-members are ignored",
        ("foo=1 \t , \t bar=2,\t \tbaz=3", " \tqux=4 \t"),
        "foo=1,bar=2,baz=3,qux=4",
    ),
    Row(
        "empty-members-skipped",
        'L1 §3.3.1.2: list-member = (key "=" value) / OWS: empty members are skipped',
        ("foo=1,, ,\t,bar=2,",),
        "foo=1,bar=2",
    ),
    Row(
        "32-members",
        "L1 §3.3.1.1: there can be a maximum of 32 list-members",
        (",".join(_members(10)), ",".join(_members(22, start=10))),
        ",".join(_members(32)),
        exported="ot=th:0," + ",".join(_members(31)),
    ),
    Row(
        "33-members",
        "L1 §3.3.1.1: more than 32 list-members make the list invalid",
        (",".join(_members(33)),),
        None,
    ),
    Row(
        "32-members-and-empty-ones",
        "L1 §3.3.1.1: empty members exist for combining fields; they do not count as entries",
        (",".join(_members(32)), "", " "),
        ",".join(_members(32)),
        exported="ot=th:0," + ",".join(_members(31)),
    ),
    # §3.3.1.3.1 Key
    Row(
        "all-key-characters",
        "L1 §3.3.1.3.1: a key holds a-z, 0-9, _, -, *, /",
        (f"{KEY_CHARS}=1",),
        f"{KEY_CHARS}=1",
    ),
    Row(
        "simple-key-256",
        "L1 §3.3.1.3.1: simple-key = lcalpha 0*255(...): 256 characters",
        ("foo=1", "z" * 256 + "=1"),
        "foo=1," + "z" * 256 + "=1",
    ),
    Row(
        "simple-key-257",
        "L1 §3.3.1.3.1: a simple key of 257 characters is invalid",
        ("foo=1", "z" * 257 + "=1"),
        None,
    ),
    Row(
        "simple-key-starts-with-digit",
        "L1 §3.3.1.3.1: a simple key begins with lcalpha (L2 §3.3.2.2.1 would allow a digit)",
        ("1abc=1,bar=2",),
        None,
    ),
    Row(
        "uppercase-key",
        "L1 §3.3.1.3.1: lowercase letters only",
        ("FOO=1",),
        None,
    ),
    Row(
        "key-with-dot",
        "L1 §3.3.1.3.1: '.' is not a key character",
        ("foo.bar=1",),
        None,
    ),
    Row(
        "space-before-equals",
        "L1 §3.3.1.3.1: a space is not a key character",
        ("foo =1",),
        None,
    ),
    Row(
        "multi-tenant-limits",
        "L1 §3.3.1.3.1: tenant-id up to 241 characters, system-id up to 14",
        ("t" * 241 + "@" + "v" * 14 + "=1", "1tenant@dt=2"),
        "t" * 241 + "@" + "v" * 14 + "=1,1tenant@dt=2",
    ),
    Row(
        "tenant-242",
        "L1 §3.3.1.3.1: a tenant-id of 242 characters is invalid",
        ("foo=1", "t" * 242 + "@v=1"),
        None,
    ),
    Row(
        "system-15",
        "L1 §3.3.1.3.1: a system-id of 15 characters is invalid",
        ("foo=1", "t@" + "v" * 15 + "=1"),
        None,
    ),
    Row(
        "system-starts-with-digit",
        "L1 §3.3.1.3.1: system-id = lcalpha 0*13(...)",
        ("t@1dt=1",),
        None,
    ),
    Row("empty-system", 'L1 §3.3.1.3.1: tenant-id "@" system-id', ("foo@=1,bar=2",), None),
    Row("empty-tenant", 'L1 §3.3.1.3.1: tenant-id "@" system-id', ("@foo=1,bar=2",), None),
    Row("two-at-signs", 'L1 §3.3.1.3.1: one "@" in a key', ("foo@bar@baz=1,bar=2",), None),
    # §3.3.1.3.2 Value
    Row(
        "all-value-characters",
        "L1 §3.3.1.3.2: printable ASCII except ',' and '=' (a leading space is part of it)",
        (f"foo={VALUE_CHARS}",),
        f"foo={VALUE_CHARS}",
    ),
    Row(
        "value-256",
        "L1 §3.3.1.3.2: value = 0*255(chr) nblk-chr: 256 characters",
        ("foo=" + "v" * 256,),
        "foo=" + "v" * 256,
    ),
    Row(
        "value-257",
        "L1 §3.3.1.3.2: a value of 257 characters is invalid",
        ("foo=" + "v" * 257,),
        None,
    ),
    Row("equals-in-value", "L1 §3.3.1.3.2: '=' is not a value character", ("foo=bar=baz",), None),
    Row("empty-value", "L1 §3.3.1.3.2: a value has at least one character", ("foo=,bar=3",), None),
    Row("tab-in-value", "L1 §3.3.1.3.2: tabs are not value characters", ("foo=a\tb",), None),
    Row(
        "only-spaces-value",
        "L1 §3.3.1.3.2: a value ends with a non-space character",
        ("foo=   ",),
        None,
    ),
    Row(
        "leading-spaces-kept",
        "L2 §3.3.2.2.2: all leading spaces MUST be preserved as part of the value",
        ("foo=  1,bar=2",),
        "foo=  1,bar=2",
    ),
    Row(
        "trailing-spaces-dropped",
        "L2 §3.3.2.2.2: trailing spaces are optional whitespace, not part of the value",
        ("foo=1  ,bar=2",),
        "foo=1,bar=2",
    ),
    # §3.3.1.4 Combined Header Value
    Row(
        "duplicate-key",
        "L1 §3.3.1.4: only one entry per key; §4.3 step 3: the entire header MAY be discarded",
        ("foo=1,foo=2",),
        None,
    ),
    Row(
        "duplicate-key-across-fields",
        "L1 §3.3.1.4: only one entry per key, also when it arrives in two fields",
        ("foo=1", "foo=1"),
        None,
    ),
    # §3.3.1.5 tracestate Limits
    Row(
        "512-characters-propagated",
        "L1 §3.3.1.5: vendors SHOULD propagate at least 512 characters",
        (",".join(_members(4, width=123)),),
        ",".join(_members(4, width=123)),
    ),
    Row(
        "long-entries-removed-first",
        "L1 §3.3.1.5: truncate whole entries; entries over 128 characters are removed first",
        (",".join([*(_long(n) for n in range(31)), "z=1"]),),
        ",".join([*(_long(n) for n in range(30)), "z=1"]),
    ),
    Row(
        "then-from-the-end",
        "L1 §3.3.1.5: then entries are removed starting from the end",
        (",".join(_members(32, width=124)),),
        ",".join(_members(31, width=124)),
        exported="ot=th:0," + ",".join(_members(31, width=124)),
    ),
    Row(
        "input-over-the-documented-maximum",
        "L1 §3.3.1.5: the maximum size handled SHOULD be documented (obskit: 32 KiB read)",
        ("foo=1", ",".join(_members(32, width=250)) + "," + " " * 20_000),
        None,
    ),
    # §3.3 and §4 Processing Model
    Row(
        "no-traceparent",
        "L1 §4.2 step 3: a tracestate without a traceparent MUST be discarded",
        ("foo=1",),
        None,
        traceparents=(),
        exported="ot=th:0",
    ),
    Row(
        "invalid-traceparent",
        "L1 §3.3: if parsing traceparent failed, tracestate MUST NOT be parsed",
        ("foo=1",),
        None,
        traceparents=("00-garbage",),
        exported="ot=th:0",
    ),
    Row(
        "invalid-tracestate-keeps-traceparent",
        "L1 §3.3: failure to parse tracestate MUST NOT affect the parsing of traceparent",
        ("FOO=1",),
        None,
        tags={"same_trace": True},
    ),
    Row(
        "header-name-any-case",
        "L1 §3.3.1: vendors MUST expect the header name in any case",
        ("foo=1",),
        "foo=1",
        name="TrAcEsTaTe",
    ),
    # §3.5 Mutating the tracestate Field (obskit changes only its own "ot" entry)
    Row(
        "modified-entry-moves-to-front",
        "L1 §3.5: modified keys MUST be moved to the beginning (left) of the list",
        ("a=1,ot=th:c;rv:00000000000001,b=2",),
        "a=1,ot=th:c;rv:00000000000001,b=2",
        # The caller sampled at 25% (th:c): the error keep keeps its weight, and the entry moves.
        exported="ot=th:c;rv:00000000000001,a=1,b=2",
    ),
]


def _traceparent(index: int) -> str:
    return f"00-{index + 1:032x}-00f067aa0ba902b7-01"


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_rule_in_the_parser(row: Row) -> None:
    """Each row's tracestate is parsed (or discarded) and written back as the row says."""
    index = ROWS.index(row)
    traceparents = _traceparents(index, row)
    ctx = propagation.remote_context(traceparents, list(row.tracestates), [])
    span = trace.get_current_span(ctx) if ctx is not None else None
    state = span.get_span_context().trace_state if span is not None else None
    if row.expected is None:
        assert not state
    else:
        assert row.expected == propagation.format_tracestate(state)
    if row.tags.get("same_trace"):
        assert span is not None
        assert index + 1 == span.get_span_context().trace_id


class TestMutation:
    """obskit's own entry (``ot``, the sampling threshold) by the rules of L1 §3.5 and L2 §3.3.2."""

    def test_new_entry_goes_first(self) -> None:
        """L1 §3.5: a new key/value pair MUST be added to the beginning of the list."""
        state = policies.with_threshold(TraceState([("a", "1"), ("b", "2")]), 0)
        assert "ot=th:0,a=1,b=2" == state.to_header()

    def test_updated_entry_moves_first_keeping_its_other_parts(self) -> None:
        """L1 §3.5: the modified ``ot`` entry moves to the front; its ``rv`` sub-key stays."""
        state = TraceState([("a", "1"), ("ot", "rv:00000000000001;th:c"), ("b", "2")])
        assert "ot=th:0;rv:00000000000001,a=1,b=2" == policies.with_threshold(state, 0).to_header()

    def test_adding_to_a_full_list_drops_the_rightmost(self) -> None:
        """L2 §3.3.2: when adding makes 33 members, the right-most member is removed."""
        state = TraceState([(f"k{n:02d}", "v") for n in range(32)])
        mutated = policies.with_threshold(state, 0)
        assert ["ot", *(f"k{n:02d}" for n in range(31))] == list(mutated.keys())

    def test_growth_past_the_limit_truncates_by_the_rules(self) -> None:
        """L1 §3.3.1.5: an entry that makes the list too long pushes out long entries first."""
        # 4,091 characters: "ot=th:0," makes 4,099, over the 4,096 obskit propagates.
        items = [(f"k{n:02d}", "x" * 131) for n in range(30)] + [("z", "1" * 9)]
        state = TraceState(items)
        assert _tracestate.MAX_CHARS >= len(state.to_header())
        mutated = policies.with_threshold(state, 0)
        assert len(mutated.to_header()) <= _tracestate.MAX_CHARS
        assert ["ot", *(f"k{n:02d}" for n in range(29)), "z"] == list(mutated.keys())

    def test_an_overlong_ot_value_loses_its_last_parts_not_the_threshold(self) -> None:
        """L1 §3.3.1.3.2: a value has at most 256 characters, so other sub-keys give way to th."""
        state = TraceState([("ot", "th:0;" + ";".join(f"x{n}:" + "y" * 20 for n in range(10)))])
        value = policies.with_threshold(state, policies.threshold_for(0.01)).get("ot")
        assert value is not None
        assert len(value) <= 256
        assert value.startswith("th:fd70a4")


@pytest.fixture(scope="module")
def two_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    """Two real uvicorn services on loopback; the first (whose kept spans go to a file) calls the
    second with httpx."""
    tmp_path = tmp_path_factory.mktemp("tracestate")
    sink = tmp_path / "caller-spans.jsonl"
    # Header limits raised so that the oversized rows reach obskit rather than h11's own limit.
    limits = ("--h11-max-incomplete-event-size", str(256 * 1024))
    with (
        serve("uvicorn", "propagation_app:app", tmp_path, *limits) as callee,
        serve(
            "uvicorn",
            "propagation_app:app",
            tmp_path,
            *limits,
            CALLEE_URL=callee.url,
            OBSKIT_TRACE_SINK=str(sink),
        ) as caller,
    ):
        yield caller, sink


def _kept_relay_spans(sink: Path) -> dict[str, dict[str, Any]]:
    """The caller's kept SERVER spans of ``/relay``, by trace id."""
    if not sink.exists():
        return {}
    spans = {}
    for raw in sink.read_text().splitlines():
        record = json.loads(raw)
        if record["kind"] == "SERVER" and record["attributes"].get("url.path") == "/relay":
            spans[record["trace_id"]] = record
    return spans


@dataclass
class WireResult:
    """What one row's request did: the callee's received headers, the caller's kept span."""

    status: int
    received: dict[str, list[str]]
    span: dict[str, Any] | None


@pytest.fixture(scope="module")
def wire(two_services: tuple[Service, Path]) -> dict[str, WireResult]:
    """Every row sent once through the two services (each with ``?fail=1``, so that the
    caller's trace is kept), then the caller's kept spans read back (waiting at most 20 s)."""
    caller, sink = two_services
    answers: dict[str, tuple[int, dict[str, list[str]]]] = {}
    with httpx.Client(timeout=10) as client:
        for index, row in enumerate(ROWS):
            traceparents = _traceparents(index, row)
            headers = [("traceparent", tp) for tp in traceparents]
            # HTTP strips whitespace around a field value (RFC 9110 §5.5); h11 refuses to send it.
            headers += [(row.name, value.strip(" \t")) for value in row.tracestates]
            response = client.get(caller.url + "/relay?fail=1", headers=headers)
            answers[row.id] = (response.status_code, response.json())
    wanted = {received["traceparent"][0][3:35] for _, received in answers.values()}
    deadline = time.monotonic() + 20
    spans = _kept_relay_spans(sink)
    while not wanted <= set(spans) and time.monotonic() < deadline:
        time.sleep(0.1)
        spans = _kept_relay_spans(sink)
    return {
        row_id: WireResult(status, received, spans.get(received["traceparent"][0][3:35]))
        for row_id, (status, received) in answers.items()
    }


def _traceparents(index: int, row: Row) -> list[str]:
    return [_traceparent(index)] if row.traceparents is None else list(row.traceparents)


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_rule_on_the_wire(row: Row, wire: dict[str, WireResult]) -> None:
    """Through two real services: the callee receives the tracestate the row expects (none when
    discarded), in one field; the caller's kept span has ``ot`` first in front of that list."""
    result = wire[row.id]
    assert 500 == result.status
    expected = [row.expected] if row.expected else []
    assert expected == result.received["tracestate"]
    assert 1 == len(result.received["traceparent"])
    traceparents = _traceparents(ROWS.index(row), row)
    if row.expected is not None or row.tags.get("same_trace"):
        assert traceparents[0][3:35] == result.received["traceparent"][0][3:35]
    assert result.span is not None
    exported = row.exported
    if exported is None:
        exported = "ot=th:0" + ("," + row.expected if row.expected else "")
    assert exported == result.span["trace_state"]
