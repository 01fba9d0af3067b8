"""@obskit.red: every kind of callable recorded once, exceptions untouched, metadata kept."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client import CollectorRegistry

import obskit
import obskit.testing

CALLS = "obskit_function_calls_total"
DURATION = "obskit_function_duration_seconds"
ACTIVE = "obskit_function_active_calls"


def _calls(
    cap: obskit.testing.Capture, function: str, result: str = "ok", error: str = ""
) -> float:
    labels = {"function": function, "module": __name__, "result": result, "error_type": error}
    return cap.sample(CALLS, labels) or 0.0


@obskit.red
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


class PaymentDeclined(Exception):
    """A user-level failure."""


def test_sync_call_counted_and_timed() -> None:
    """Each call of a decorated function adds one ok call and one duration observation."""
    with obskit.testing.isolated() as cap:
        assert 5 == add(3)
        assert 4 == add(2, b=2)
        assert 2.0 == _calls(cap, "add")
        labels = {"function": "add", "module": __name__, "result": "ok", "error_type": ""}
        assert 2.0 == cap.sample(DURATION + "_count", labels)
        assert (cap.sample(DURATION + "_sum", labels) or 0.0) > 0.0


def test_metadata_is_kept() -> None:
    """Signature, docstring and name survive decoration."""
    assert "(a: 'int', b: 'int' = 2) -> 'int'" == str(inspect.signature(add))
    assert "Add two numbers." == add.__doc__
    assert "add" == add.__name__


def test_exception_reraised_unchanged_and_counted() -> None:
    """The user's exception object propagates as is and counts as an error of its class."""
    boom = PaymentDeclined("card 1234 declined")

    @obskit.red
    def charge() -> None:
        raise boom

    with obskit.testing.isolated() as cap:
        with pytest.raises(PaymentDeclined) as info:
            charge()
        assert info.value is boom
        assert info.value.__traceback__ is not None
        name = charge.__qualname__
        assert 1.0 == _calls(cap, name, "error", f"{__name__}.PaymentDeclined")
        assert 0.0 == _calls(cap, name)


def test_ok_exceptions_are_not_errors() -> None:
    """An exception listed in ok_exceptions is re-raised but counted as ok."""

    @obskit.red(ok_exceptions=(KeyError,))
    def lookup() -> None:
        raise KeyError("missing")

    with obskit.testing.isolated() as cap:
        with pytest.raises(KeyError):
            lookup()
        assert 1.0 == _calls(cap, lookup.__qualname__)
        assert 0.0 == _calls(cap, lookup.__qualname__, "error", "KeyError")


def test_name_and_static_labels() -> None:
    """name= replaces the function label; labels= adds static labels to every family."""

    @obskit.red(name="ledger.write", labels={"tier": "gold"})
    def write() -> None:
        return None

    with obskit.testing.isolated() as cap:
        write()
        labels = {
            "function": "ledger.write",
            "module": __name__,
            "result": "ok",
            "error_type": "",
            "tier": "gold",
        }
        assert 1.0 == cap.sample(CALLS, labels)
        assert 0.0 == cap.sample(
            ACTIVE, {"function": "ledger.write", "module": __name__, "tier": "gold"}
        )


def test_reserved_or_bad_label_names_rejected() -> None:
    """A static label that would clash with obskit's labels is refused at decoration time."""
    with pytest.raises(ValueError):
        obskit.red(labels={"result": "x"})
    with pytest.raises(ValueError):
        obskit.red(labels={"bad-name": "x"})
    with pytest.raises(TypeError):
        obskit.red(ok_exceptions=KeyError)  # type: ignore[arg-type]


def test_in_flight_gauge_during_the_call() -> None:
    """While a call runs, the in-flight gauge counts it; afterwards it is back to zero."""
    seen: list[float | None] = []

    with obskit.testing.isolated() as cap:
        labels = {"function": "", "module": __name__}

        @obskit.red(name="busy")
        def busy() -> None:
            seen.append(cap.sample(ACTIVE, {**labels, "function": "busy"}))

        busy()
        assert [1.0] == seen
        assert 0.0 == cap.sample(ACTIVE, {**labels, "function": "busy"})


def test_async_function() -> None:
    """A coroutine function stays one, and its awaited calls are recorded."""

    @obskit.red
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert inspect.iscoroutinefunction(fetch)
    with obskit.testing.isolated() as cap:
        assert 8 == asyncio.run(fetch(4))
        assert 1.0 == _calls(cap, fetch.__qualname__)


def test_async_exception_counted() -> None:
    """An exception raised by an awaited call is re-raised and counted by class."""

    @obskit.red
    async def fail() -> None:
        raise PaymentDeclined

    with obskit.testing.isolated() as cap:
        with pytest.raises(PaymentDeclined):
            asyncio.run(fail())
        assert 1.0 == _calls(cap, fail.__qualname__, "error", f"{__name__}.PaymentDeclined")


def test_generator_recorded_once_when_exhausted() -> None:
    """A generator is one call, recorded when it is exhausted, with its values intact."""

    @obskit.red
    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    assert inspect.isgeneratorfunction(numbers)
    with obskit.testing.isolated() as cap:
        assert [0, 1, 2] == list(numbers(3))
        assert 1.0 == _calls(cap, numbers.__qualname__)


def test_generator_abandoned_half_way_recorded_once() -> None:
    """A generator dropped after one item is recorded exactly once (when it is closed)."""

    @obskit.red
    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    with obskit.testing.isolated() as cap:
        gen = numbers()
        assert 1 == next(gen)
        assert 0.0 == _calls(cap, numbers.__qualname__)
        del gen
        gc.collect()
        assert 1.0 == _calls(cap, numbers.__qualname__)
        gen2 = numbers()
        next(gen2)
        gen2.close()
        gen2.close()
        assert 2.0 == _calls(cap, numbers.__qualname__)


def test_generator_send_and_error() -> None:
    """send() reaches the inner generator; an exception inside it counts as an error."""

    @obskit.red
    def echo() -> Iterator[int]:
        received = yield 0
        yield received
        raise PaymentDeclined

    with obskit.testing.isolated() as cap:
        gen = echo()
        assert 0 == next(gen)
        assert 41 == gen.send(41)
        with pytest.raises(PaymentDeclined):
            next(gen)
        assert 1.0 == _calls(cap, echo.__qualname__, "error", f"{__name__}.PaymentDeclined")


def test_async_generator_exhausted_and_closed() -> None:
    """An async generator stays one; exhausted or closed early it is recorded once each."""

    @obskit.red
    async def ticks(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert inspect.isasyncgenfunction(ticks)

    async def run() -> list[int]:
        got = [i async for i in ticks(3)]
        early = ticks(10)
        got.append(await early.__anext__())
        await early.aclose()
        return got

    with obskit.testing.isolated() as cap:
        assert [0, 1, 2, 0] == asyncio.run(run())
        assert 2.0 == _calls(cap, ticks.__qualname__)


def test_async_generator_error_and_athrow() -> None:
    """athrow() is passed to the inner generator; an exception escaping it counts as an error."""

    @obskit.red
    async def guarded() -> AsyncIterator[str]:
        try:
            yield "first"
        except ValueError:
            yield "recovered"
        raise PaymentDeclined

    async def run() -> list[str]:
        gen = guarded()
        got = [await gen.__anext__(), await gen.athrow(ValueError())]
        with pytest.raises(PaymentDeclined):
            await gen.__anext__()
        return got

    with obskit.testing.isolated() as cap:
        assert ["first", "recovered"] == asyncio.run(run())
        assert 1.0 == _calls(cap, guarded.__qualname__, "error", f"{__name__}.PaymentDeclined")


class Ledger:
    """Methods of every kind, decorated."""

    def __init__(self) -> None:
        self.total = 0

    @obskit.red
    def post(self, amount: int) -> int:
        self.total += amount
        return self.total

    @classmethod
    @obskit.red
    def create(cls) -> Ledger:
        return cls()

    @obskit.red
    @staticmethod
    def currency() -> str:
        return "EUR"


def test_methods_classmethods_staticmethods() -> None:
    """Instance, class and static methods keep their binding and are each recorded."""
    with obskit.testing.isolated() as cap:
        ledger = Ledger.create()
        assert 5 == ledger.post(5)
        assert "EUR" == Ledger.currency()
        assert "EUR" == ledger.currency()
        assert 1.0 == _calls(cap, "Ledger.post")
        assert 1.0 == _calls(cap, "Ledger.create")
        assert 2.0 == _calls(cap, "Ledger.currency")


def test_pass_through_before_init_then_binds() -> None:
    """Before init() calls are forwarded unrecorded; after init() the same function records."""
    assert 3 == add(1)
    with obskit.testing.isolated() as cap:
        add(1)
        assert 1.0 == _calls(cap, "add")


def test_pass_through_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_SDK_DISABLED the decorator records nothing and forwards the call."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with obskit.testing.isolated() as cap:
        assert 3 == add(1)
        assert 0.0 == _calls(cap, "add")
        assert None is cap.sample(CALLS, {"function": "add"})


def test_explicit_registry_records_without_init() -> None:
    """registry= records into that registry, initialised or not."""
    registry = CollectorRegistry()

    @obskit.red(registry=registry)
    def job() -> None:
        return None

    job()
    labels = {"function": job.__qualname__, "module": __name__, "result": "ok", "error_type": ""}
    assert 1.0 == registry.get_sample_value(CALLS, labels)


def test_rebinds_after_reinit() -> None:
    """After shutdown and a new init(), calls land in the new runtime's registry."""
    with obskit.testing.isolated() as first:
        add(1)
        assert 1.0 == _calls(first, "add")
    with obskit.testing.isolated() as second:
        add(1)
        add(1)
        assert 2.0 == _calls(second, "add")


def test_threads_lose_no_count() -> None:
    """Eight threads calling concurrently: every call is counted."""

    @obskit.red
    def tick() -> None:
        return None

    def hammer() -> None:
        for _ in range(2000):
            tick()

    with obskit.testing.isolated() as cap:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 16_000.0 == _calls(cap, tick.__qualname__)


def test_callable_objects_and_partials() -> None:
    """Callable objects (async ones awaited) and partials are recorded under their class name."""
    import functools

    class Sync:
        def __call__(self, x: int) -> int:
            return x

    class Async:
        async def __call__(self, x: int) -> int:
            return x

    sync_red = obskit.red(Sync())
    async_red = obskit.red(Async())
    partial_red = obskit.red(functools.partial(add, 1))
    with obskit.testing.isolated() as cap:
        assert 1 == sync_red(1)
        assert 2 == asyncio.run(async_red(2))
        assert 3 == partial_red()
        assert 1.0 == _calls(cap, Sync.__qualname__)
        assert 1.0 == _calls(cap, Async.__qualname__)
        labels = {"function": "partial", "module": "functools", "result": "ok", "error_type": ""}
        assert 1.0 == cap.sample(CALLS, labels)
