"""The cardinality guard keeps label values bounded and gives the slots to heavy traffic."""

from __future__ import annotations

import random
import time
from typing import Any

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


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_made_up_ids_do_not_keep_the_slots() -> None:
    """20 made-up ids sent twice take the slots; 5 real tenants' 10,000 calls then win 5 of them."""
    evictions: list[str] = []
    guard = CardinalityGuard("tenant_id", top_k=20, on_evict=evictions.append)
    fake = [f"made-up-{i}" for i in range(20)]
    for value in fake * 2:
        guard(value)
    assert sorted(fake) == guard.admitted()
    real = [f"real-{i}" for i in range(5)]
    labels = [guard(real[i % 5]) for i in range(10_000)]
    for tenant in real:
        assert labels.count(tenant) > 1_900, tenant
    assert set(real) <= set(guard.admitted())
    assert 20 == len(guard.admitted())
    assert ["tenant_id"] * 5 == evictions
    assert 5 == guard.evicted


def test_live_tenants_keep_their_slots_under_rotating_ids() -> None:
    """Steady tenants are not displaced by a flood of ids that each send a little traffic."""
    evictions: list[str] = []
    guard = CardinalityGuard("tenant_id", top_k=10, on_evict=evictions.append)
    steady = [f"steady-{i}" for i in range(10)]
    for i in range(1_000):
        guard(steady[i % 10])
    assert sorted(steady) == guard.admitted()
    rng = random.Random(3)
    for i in range(50_000):
        if i % 2:
            guard(steady[i % 10 if i % 4 == 1 else rng.randrange(10)])
        else:
            guard(f"attacker-{i // 4}")  # each attacker id: two calls
    assert sorted(steady) == guard.admitted()
    assert [] == evictions


def test_equal_traffic_does_not_flap() -> None:
    """A challenger only as heavy as the weakest holder never takes its slot (hysteresis)."""
    guard = CardinalityGuard("tenant_id", top_k=2, capacity=64)
    for value in ("a", "b", "a", "b"):
        guard(value)
    for i in range(20_000):
        guard(("a", "b", "c")[i % 3])
    assert ["a", "b"] == guard.admitted()
    assert 0 == guard.evicted


def test_churn_is_bounded_by_the_turnover_budget() -> None:
    """Waves of new heavy values evict at most top_k per turnover period, then wait for time."""
    clock = FakeClock()
    guard = CardinalityGuard("tenant_id", top_k=4, capacity=64, turnover_s=600, clock=clock)
    for wave in range(30):
        for i in range(2_000):
            guard(f"wave-{wave}-{i % 4}")
    assert 4 == guard.evicted  # one whole turnover, no more, while no time passes
    clock.now += 300  # half a period: tokens for half the slots
    for i in range(4_000):
        guard(f"late-{i % 4}")
    assert 6 == guard.evicted


def test_a_dead_tenant_is_displaced_by_a_live_one() -> None:
    """A tenant that stopped sending loses its slot to one that keeps sending."""
    guard = CardinalityGuard("tenant_id", top_k=3, capacity=64)
    for _ in range(100):
        for value in ("a", "b", "gone"):
            guard(value)
    for i in range(1_000):
        guard(("a", "b", "new")[i % 3])
    assert ["a", "b", "new"] == guard.admitted()
    assert OVERFLOW == guard("gone")


def test_hot_path_of_an_admitted_value_takes_no_lock() -> None:
    """An admitted value maps to itself while another thread holds the guard's lock."""
    guard = CardinalityGuard("tenant_id", admit_after=1)
    assert "acme" == guard("acme")
    with guard._lock:
        assert "acme" == guard("acme")


def test_forked_child_gets_a_lock_nobody_holds() -> None:
    """A fork while another thread holds the guard's lock leaves the child's guard usable."""
    import os
    import threading
    import warnings

    import pytest

    import obskit.testing
    from obskit import _live

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    with obskit.testing.isolated(tracing=False):
        component = _live.metrics()
        assert component is not None
        guard = component.tenant_guard
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with guard._lock:
                inside.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(5)
        with warnings.catch_warnings():  # (3.12+ warns about forking a threaded process)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: one thread, the parent's holder is gone
            code = 0 if OVERFLOW == guard("never-seen") else 1
            os._exit(code)
        release.set()
        holder.join(5)
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert status is not None
        assert 0 == os.waitstatus_to_exitcode(status)


def test_real_tenants_take_over_through_the_middleware() -> None:
    """Through the ASGI middleware: made-up ids first, then real tenants get their own series."""
    import asyncio

    import obskit
    import obskit.testing
    from metrics_support import asgi_request

    async def hello(scope: dict[str, object], receive: object, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    real = [f"real-{i}" for i in range(5)]

    async def traffic(app: Any) -> None:
        for i in range(40):
            await asgi_request(app, "/x", tenant=f"made-up-{i % 20}")
        for i in range(10_000):
            await asgi_request(app, "/x", tenant=real[i % 5])

    with obskit.testing.isolated(tracing=False, access_log=False) as cap:
        asyncio.run(traffic(obskit.ASGIMiddleware(hello)))
        labels = {
            "http_request_method": "GET",
            "url_scheme": "http",
            "http_route": "__unmatched__",
            "http_response_status_code": "200",
            "error_type": "",
        }
        count = "http_server_request_duration_seconds_count"
        per_tenant = {t: cap.sample(count, {**labels, "tenant_id": t}) or 0.0 for t in real}
        evictions = cap.sample("obskit_label_evictions_total", {"label": "tenant_id"})
    assert all(value > 1_900 for value in per_tenant.values()), per_tenant
    assert 5.0 == evictions
