"""Business events: one family, outcome and guarded tenant, never raising into the caller."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import obskit
import obskit.testing
from obskit.metrics import business

TOTAL = "obskit_business_events_total"


def _count(env: obskit.testing.Capture, event: str, outcome: str, tenant: str = "") -> float:
    labels = {"event": event, "outcome": outcome, "tenant_id": tenant}
    return env.sample(TOTAL, labels) or 0.0


def test_call_form_counts_success_and_failure_with_tenant_from_context() -> None:
    """business_event(name, success=...) counts one outcome, tenant taken from the context."""
    with obskit.testing.isolated(service_name="t", label_allow=["acme"]) as env:
        with obskit.bound(tenant_id="acme"):
            obskit.business_event("checkout", success=True)
            obskit.business_event("checkout", success=True)
            obskit.business_event("checkout", success=False)
        obskit.business_event("checkout", success=True, tenant_id="acme")
        obskit.business_event("checkout", success=True)
        assert 3.0 == _count(env, "checkout", "success", "acme")
        assert 1.0 == _count(env, "checkout", "failure", "acme")
        assert 1.0 == _count(env, "checkout", "success", "")


def test_tenant_goes_through_the_cardinality_guard() -> None:
    """Many distinct tenants give at most top_k + 1 label values (the rest __other__)."""
    with obskit.testing.isolated(service_name="t", label_top_k=2) as env:
        for n in range(50):
            for _ in range(3):
                obskit.business_event("signup", success=True, tenant_id=f"t{n}")
        text = generate_latest(env.registry).decode()
        tenants = {
            line.split('tenant_id="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith(TOTAL)
        }
        assert {"t0", "t1", "__other__"} == tenants
        total = sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(TOTAL)
        )
        assert 150.0 == total


def test_decorator_counts_returns_as_success_and_raises_as_failure() -> None:
    """The decorator form counts a success per return and a failure per raise (re-raised)."""

    @obskit.business_event("pay")
    def pay(ok: bool) -> str:
        if not ok:
            raise ValueError("declined")
        return "paid"

    @obskit.business_event("refund", success_if=lambda result: result == "done")
    async def refund(result: str) -> str:
        return result

    with obskit.testing.isolated(service_name="t") as env:
        assert "paid" == pay(True)
        with pytest.raises(ValueError, match="declined"):
            pay(False)
        assert "done" == asyncio.run(refund("done"))
        assert "nope" == asyncio.run(refund("nope"))
        assert 1.0 == _count(env, "pay", "success")
        assert 1.0 == _count(env, "pay", "failure")
        assert 1.0 == _count(env, "refund", "success")
        assert 1.0 == _count(env, "refund", "failure")


def test_cancellation_is_not_an_outcome() -> None:
    """A cancelled coroutine counts neither a success nor a failure."""

    @obskit.business_event("wait")
    async def wait() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(wait())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with obskit.testing.isolated(service_name="t") as env:
        asyncio.run(main())
        assert 0.0 == _count(env, "wait", "success") + _count(env, "wait", "failure")


def test_before_init_nothing_is_recorded_unless_a_registry_is_named() -> None:
    """Without init() a call is a no-op; registry= records there even before init()."""
    obskit.business_event("checkout", success=True)  # nothing to record into: no error
    registry = CollectorRegistry()
    obskit.business_event("checkout", success=False, tenant_id="acme", registry=registry)
    labels = {"event": "checkout", "outcome": "failure", "tenant_id": "__other__"}
    # A private guard admits a tenant from its second event on, as the runtime's does.
    assert 1.0 == registry.get_sample_value(TOTAL, labels)


def test_event_names_past_the_cap_fold_into_other() -> None:
    """Past MAX_EVENTS distinct names, further names count as __other__ and as overflow."""
    with obskit.testing.isolated(service_name="t") as env:
        for n in range(business.MAX_EVENTS + 5):
            obskit.business_event(f"e{n}", success=True)
        obskit.business_event("x" * 500, success=True)
        assert 6.0 == _count(env, "__other__", "success")
        assert 6.0 == env.sample("obskit_label_overflow_total", {"label": "event"})


def test_failing_success_predicate_is_reported_not_raised() -> None:
    """A success_if that raises is an internal error counted, and the call's result returned."""
    from obskit import _guard

    @obskit.business_event("odd", success_if=lambda result: 1 / 0 > result)
    def odd() -> int:
        return 3

    previous = _guard.set_strict(False)
    try:
        with obskit.testing.isolated(service_name="t") as env:
            assert 3 == odd()
            assert 0.0 == _count(env, "odd", "success") + _count(env, "odd", "failure")
            assert 1 == _guard.counts().get("metrics.business.success_if")
    finally:
        _guard.set_strict(previous)


def test_decorator_rejects_bad_configuration() -> None:
    """An empty name or a generator is refused when decorating, not at call time."""
    with pytest.raises(ValueError, match="event name"):
        obskit.business_event("")
    with pytest.raises(TypeError, match="generators"):

        @obskit.business_event("gen")
        def gen() -> object:
            yield 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_events_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    """In multi-process mode a forked child's events add to the parent's in any scrape."""
    with obskit.testing.isolated(service_name="t", multiprocess_dir=str(tmp_path)) as env:
        obskit.business_event("checkout", success=True)
        pid = os.fork()
        if pid == 0:  # the child: record twice, then leave without running the parent's atexit
            code = 0
            try:
                obskit.business_event("checkout", success=True)
                obskit.business_event("checkout", success=True)
            except BaseException:
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert 0 == status
        from obskit import _live

        component = _live.metrics()
        assert component is not None
        text = generate_latest(component.scrape_source()).decode()  # type: ignore[arg-type]
        series = f'{TOTAL}{{event="checkout",outcome="success",tenant_id=""}}'
        assert f"{series} 3.0" in text
        assert env.registry is component.registry


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_counts_afresh_in_memory() -> None:
    """In single-process mode a forked child's counts start from zero, not from the parent's."""
    with obskit.testing.isolated(service_name="t") as env:
        obskit.business_event("checkout", success=True)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                obskit.business_event("checkout", success=True)
                value = _count(env, "checkout", "success")
                os.write(write, str(value).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        child_value = os.read(read, 64).decode()
        os.close(read)
        assert 0 == status
        assert "1.0" == child_value
        assert 1.0 == _count(env, "checkout", "success")
