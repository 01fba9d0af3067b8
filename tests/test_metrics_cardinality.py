"""The cardinality guard keeps label values bounded and gives the slots to heavy traffic."""

from __future__ import annotations

import random

from obskit.metrics.cardinality import OVERFLOW, CardinalityGuard


def test_hundred_thousand_tenants_give_at_most_k_plus_one_values() -> None:
    """100,000 distinct tenants, plus a few heavy ones, map to at most K+1 label values."""
    overflows: list[str] = []
    guard = CardinalityGuard("tenant_id", top_k=10, on_overflow=overflows.append)
    rng = random.Random(7)
    heavy = [f"heavy-{i}" for i in range(5)]
    seen = set()
    for i in range(100_000):
        value = rng.choice(heavy) if i % 4 == 0 else f"tenant-{i}"
        seen.add(guard(value))
    assert len(seen) <= 10 + 1
    assert set(heavy) <= seen
    assert OVERFLOW in seen
    assert len(overflows) == guard.overflowed
    assert {"tenant_id"} == set(overflows)


def test_tracker_memory_is_bounded() -> None:
    """The traffic table never holds more than its capacity, whatever the flood."""
    guard = CardinalityGuard("user_id", top_k=5, capacity=50)
    for i in range(20_000):
        guard(f"user-{i}")
    assert len(guard._candidates) <= 50
    assert [] == guard.admitted()


def test_allow_list_values_always_keep_their_label() -> None:
    """An allow-listed value maps to itself on first sight, without using a top-K slot."""
    guard = CardinalityGuard("tenant_id", top_k=0, allow=["vip"])
    assert "vip" == guard("vip")
    assert OVERFLOW == guard("other")


def test_heavy_value_admitted_after_threshold() -> None:
    """A value maps to itself from its admit_after-th occurrence on."""
    guard = CardinalityGuard("tenant_id", top_k=3, admit_after=3)
    assert [OVERFLOW, OVERFLOW, "acme", "acme"] == [guard("acme") for _ in range(4)]


def test_missing_value_is_empty() -> None:
    """No tenant (None or empty) is the empty label value, not an overflow."""
    guard = CardinalityGuard("tenant_id")
    assert "" == guard(None)
    assert "" == guard("")
    assert 0 == guard.overflowed


def test_overlong_value_is_never_admitted() -> None:
    """A value longer than the limit is folded however often it is seen."""
    guard = CardinalityGuard("tenant_id", admit_after=1)
    assert OVERFLOW == guard("x" * 1000)
