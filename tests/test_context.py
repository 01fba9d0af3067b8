"""Request context is correct across asyncio tasks, threads, to_thread and executors."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import obskit
import obskit.testing
from obskit import context


def _check_lines_own_ids(lines: list[dict[str, object]], expected_count: int) -> None:
    assert expected_count == len(lines)
    for line in lines:
        me = line["me"] if "me" in line else str(line["event"]).rsplit(" ", 1)[-1]
        assert me == line["correlation_id"], line
        assert f"tenant-{me}" == line["tenant_id"], line


def test_tasks_and_threads_never_see_each_others_ids() -> None:
    """1,000 asyncio tasks and 8 threads, each with its own ids, log only their own ids."""
    log = obskit.get_logger("ctx")
    std = logging.getLogger("ctx.std")

    async def task(n: int) -> None:
        me = f"task{n}"
        with obskit.bound(correlation_id=me, tenant_id=f"tenant-{me}"):
            for _ in range(2):
                log.info("structlog", me=me)
                await asyncio.sleep(0)
                std.info("stdlib %s", me)
                await asyncio.sleep(0)

    def thread(n: int, barrier: threading.Barrier) -> None:
        me = f"thread{n}"
        obskit.bind(correlation_id=me, tenant_id=f"tenant-{me}")
        barrier.wait()
        for _ in range(50):
            log.info("structlog", me=me)
            std.info("stdlib %s", me)

    async def main() -> None:
        await asyncio.gather(*(task(n) for n in range(1000)))

    with obskit.testing.isolated(service_name="svc") as capture:
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=thread, args=(n, barrier)) for n in range(8)]
        for t in threads:
            t.start()
        asyncio.run(main())
        for t in threads:
            t.join(timeout=30)
        lines = list(capture.logs)
        raw = capture.output_lines()
    _check_lines_own_ids(lines, 1000 * 4 + 8 * 100)
    assert len(lines) == len(raw)


def test_bound_restores_exactly_and_bind_stays_in_its_task() -> None:
    """bound() restores the previous context on exit; bind() in a child task does not leak."""

    async def child() -> None:
        obskit.bind(user_id="u1")
        assert "u1" == obskit.get_context()["user_id"]

    async def main() -> None:
        with obskit.bound(tenant_id="a"):
            with obskit.bound(tenant_id="b", user_id="x"):
                assert {"tenant_id": "b", "user_id": "x"} == obskit.get_context()
            assert {"tenant_id": "a"} == obskit.get_context()
            await asyncio.create_task(child())
            assert "user_id" not in obskit.get_context()
        assert {} == obskit.get_context()

    asyncio.run(main())


def test_bound_restores_on_exception() -> None:
    """An exception inside bound() still restores the context."""
    try:
        with obskit.bound(tenant_id="t"):
            raise KeyError("x")
    except KeyError:
        pass
    assert {} == obskit.get_context()


def test_to_thread_sees_context() -> None:
    """asyncio.to_thread carries the caller's context."""

    async def main() -> str:
        with obskit.bound(correlation_id="c1"):
            return await asyncio.to_thread(lambda: obskit.get_context()["correlation_id"])

    assert "c1" == asyncio.run(main())


def test_carry_for_executors_and_threads() -> None:
    """obskit.carry(fn) makes executor.submit and Thread targets see the submitting context."""
    seen: list[object] = []
    with obskit.bound(correlation_id="c2"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            plain = pool.submit(lambda: obskit.get_context().get("correlation_id")).result()
            carried = pool.submit(obskit.carry(lambda: obskit.get_context()["correlation_id"]))
            assert "c2" == carried.result()
        thread = threading.Thread(target=obskit.carry(lambda: seen.append(obskit.get_context())))
        thread.start()
        thread.join()
    assert plain is None
    assert [{"correlation_id": "c2"}] == seen


def test_carried_function_is_reusable_concurrently() -> None:
    """The same carried function can run in several threads at once."""
    with obskit.bound(tenant_id="t"):
        fn = obskit.carry(lambda _: obskit.get_context()["tenant_id"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert ["t"] * 20 == list(pool.map(fn, range(20)))


def test_unbind_removes_keys() -> None:
    """unbind() removes only the named keys."""

    def body() -> dict[str, object]:
        obskit.bind(a=1, b=2)
        obskit.unbind("a")
        return obskit.get_context()

    import contextvars

    assert {"b": 2} == contextvars.copy_context().run(body)


class TestCleanId:
    def test_accepts_printable_ascii(self) -> None:
        """A normal request id passes unchanged, from str or bytes."""
        assert "abc-123_X.y" == context.clean_id("abc-123_X.y")
        assert "abc" == context.clean_id(b"abc")

    def test_rejects_unsafe(self) -> None:
        """Empty, too long, control characters, spaces and non-ASCII are refused."""
        for bad in ["", "a" * 129, "a\r\nSet-Cookie: x", "a b", "é", b"\xff\xfe", None]:
            assert context.clean_id(bad) is None

    def test_new_ids_are_unique_hex(self) -> None:
        """Generated ids are 32 hex digits and do not repeat."""
        ids = {context.new_id() for _ in range(1000)}
        assert 1000 == len(ids)
        assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)

    def test_new_ids_are_unique_across_threads(self) -> None:
        """Eight threads drawing ids at once (from shared batches) never receive the same id."""

        def draw() -> list[str]:
            return [context.new_id() for _ in range(2000)]

        with ThreadPoolExecutor(8) as pool:
            drawn = [i for ids in pool.map(lambda _: draw(), range(8)) for i in ids]
        assert 16000 == len(set(drawn))

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_does_not_repeat_parent_ids(self) -> None:
        """A forked child's ids differ from the ones its parent hands out after the fork."""
        context.new_id()  # a batch with ids left over exists in the parent
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its next ids and leave at once
            os.close(read_end)
            os.write(write_end, ",".join(context.new_id() for _ in range(8)).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            child_ids = set(pipe.read().split(","))
        os.waitpid(pid, 0)
        parent_ids = {context.new_id() for _ in range(8)}
        assert 8 == len(child_ids)
        assert set() == child_ids & parent_ids
