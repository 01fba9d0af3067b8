"""W3C Trace Context and Baggage parsing follows the specifications, not only the SDK."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage, trace

from obskit.web import propagation

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_valid_traceparent_parses() -> None:
    """A version-00 traceparent yields its trace id, span id and sampled flag, as remote."""
    ctx = propagation.parse_traceparent(VALID)
    assert ctx is not None
    assert 0x0AF7651916CD43DD8448EB211C80319C == ctx.trace_id
    assert 0xB7AD6B7169203331 == ctx.span_id
    assert ctx.trace_flags.sampled
    assert ctx.is_remote


def test_invalid_traceparents_are_refused() -> None:
    """Upper-case hex, version ff, zero ids, extra text on version 00 and bad separators fail."""
    bad = [
        VALID.upper(),
        "ff" + VALID[2:],
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        VALID + "-extra",
        VALID.replace("-", "_"),
        VALID[:-1],
        "",
    ]
    assert [None] * len(bad) == [propagation.parse_traceparent(v) for v in bad]


def test_future_version_parses_its_known_prefix() -> None:
    """A later version may append fields after a dash; the first 55 characters are read."""
    ctx = propagation.parse_traceparent("cc" + VALID[2:] + "-what-ever")
    assert ctx is not None
    assert 0xB7AD6B7169203331 == ctx.span_id
    assert propagation.parse_traceparent("cc" + VALID[2:] + "x") is None


def test_repeated_traceparent_is_invalid() -> None:
    """Two traceparent headers make the context invalid (no parent is used)."""
    ctx = propagation.remote_context([VALID, VALID], [], [])
    assert ctx is None


def test_tracestate_rules() -> None:
    """Repeated headers join; bad keys, duplicates and more than 32 members discard it all."""
    state = propagation.parse_tracestate(["a=1, b@tenant=2", "c=3"])
    assert state is not None
    assert [("a", "1"), ("b@tenant", "2"), ("c", "3")] == list(state.items())
    assert propagation.parse_tracestate(["A=1"]) is None
    assert propagation.parse_tracestate(["a=1,a=2"]) is None
    assert propagation.parse_tracestate(["a=bad,value"]) is None
    too_many = ",".join(f"k{i}=v" for i in range(33))
    assert propagation.parse_tracestate([too_many]) is None
    assert propagation.parse_tracestate([",".join(f"k{i}=v" for i in range(32))]) is not None


def test_tracestate_needs_valid_traceparent() -> None:
    """A tracestate without a valid traceparent is dropped along with it."""
    assert propagation.remote_context(["garbage"], ["a=1"], []) is None


def test_baggage_members() -> None:
    """Baggage values are percent-decoded, properties ignored, broken members skipped."""
    entries = propagation.parse_baggage(["user=alice%20b;prop=1, bad member, k2 = v2"])
    assert {"user": "alice b", "k2": "v2"} == entries
    ctx = propagation.remote_context([], [], ["user=alice"])
    assert "alice" == baggage.get_baggage("user", ctx)


def test_format_round_trip() -> None:
    """What obskit writes, obskit (and the W3C grammar) reads back unchanged."""
    ctx = propagation.parse_traceparent(VALID)
    assert ctx is not None
    assert VALID == propagation.format_traceparent(ctx)
    value = propagation.format_baggage({"user": "a b,c;d", "n": 1})
    assert value is not None
    assert {"user": "a b,c;d", "n": "1"} == propagation.parse_baggage([value])


@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    """No header text makes the parsers raise; a parsed context is always valid."""
    ctx = propagation.remote_context([text], [text], [text])
    if ctx is not None:
        span_context = trace.get_current_span(ctx).get_span_context()
        assert span_context.is_valid or not span_context.trace_id
