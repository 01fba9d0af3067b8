"""Fork while another thread is inside obskit: run as a script, one scenario per process.

``python fork_scenarios.py <scenario> <forks>`` initialises obskit, starts a thread that hammers
one lock-holding path (label sets, the tenant guard, the tail sampler, the export lanes, the log
buffer, the guard, ``init()``, scrapes, requests, ...), then forks ``<forks>`` times. Each child
runs the same path itself, then flushes, scrapes and shuts obskit down, and exits 0. A child that
has not exited within ``CHILD_TIMEOUT_S`` (hung inside ``os.fork()``'s hooks or on a lock the
parent's thread held) is killed and counted. The last line printed is a JSON summary.
"""

from __future__ import annotations

import concurrent.futures
import faulthandler
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry, generate_latest

import obskit
from obskit import _guard
from obskit.testing import flush

CHILD_TIMEOUT_S = 5.0
_counter = itertools.count()


def _settings(**extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "service_name": "forks",
        "log_stream": "stderr",
        "log_level": "warning",
        "collectors": "none",
        "trace_sink": os.path.join(tempfile.gettempdir(), f"obskit-forks-{os.getpid()}.jsonl"),
        "registry": REGISTRY,
    }
    settings.update(extra)
    return settings


REGISTRY = CollectorRegistry()
_CURRENT: dict[str, Any] = {}  # the settings the scenario initialised obskit with


def _start(**extra: Any) -> None:
    _CURRENT.clear()
    _CURRENT.update(_settings(**extra))
    obskit.init(**_CURRENT)


class _Pool:
    """Something to track (tracked objects are held weakly)."""


def _spans(n: int = 3, error: bool = False) -> None:
    tracer = obskit.get_tracer("forks")
    with tracer.start_as_current_span("root"):
        for _ in range(n):
            with tracer.start_as_current_span("child") as span:
                if error:
                    span.set_status(Status(StatusCode.ERROR))


def _store() -> Callable[[], None]:
    from obskit._live import metrics_store

    store = metrics_store()
    assert store is not None
    family = store.histogram("fork_test_seconds", "A family whose label sets keep growing.", ["k"])
    counter = store.counter("fork_test", "A counter whose label sets keep growing.", ["k"])

    def op() -> None:
        n = next(_counter)
        family.labels(str(n)).observe(0.1)
        counter.labels(str(n)).inc()

    return op


def _guard_op() -> Callable[[], None]:
    from obskit._live import metrics

    component = metrics()
    assert component is not None
    guard = component.tenant_guard

    def op() -> None:
        guard(f"tenant-{next(_counter)}")

    return op


def _sampler() -> Callable[[], None]:
    return _spans


def _lanes() -> Callable[[], None]:
    def op() -> None:
        _spans(error=True)  # kept: every trace goes through the export lanes

    return op


def _log_buffer() -> Callable[[], None]:
    log = obskit.get_logger("forks")

    def op() -> None:
        with obskit.get_tracer("forks").start_as_current_span("root"):
            for _ in range(5):
                log.debug("held until the trace is decided", n=1)

    return op


def _guard_report() -> Callable[[], None]:
    _guard.set_strict(False)
    error = RuntimeError("a counted internal error")

    def op() -> None:
        _guard.report("forks.test", error)

    return op


def _init() -> Callable[[], None]:
    settings = dict(_CURRENT)

    def op() -> None:
        obskit.init(**settings)  # the same settings: takes the runtime lock, changes nothing

    return op


def _scrape() -> Callable[[], None]:
    def op() -> None:
        generate_latest(REGISTRY)

    return op


def _requests() -> Callable[[], None]:
    from wsgiref.util import setup_testing_defaults

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    app = obskit.WSGIMiddleware(hello)

    def op() -> None:
        environ: dict[str, Any] = {"PATH_INFO": f"/p/{next(_counter) % 50}"}
        setup_testing_defaults(environ)
        environ["HTTP_X_TENANT_ID"] = f"t{next(_counter) % 1000}"
        body = app(environ, lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return op


def _red() -> Callable[[], None]:
    def op() -> None:
        n = next(_counter)

        @obskit.red(name=f"forks.op{n % 500}")
        def work() -> int:
            return n

        work()

    return op


def _pools() -> Callable[[], None]:
    pool = concurrent.futures.ThreadPoolExecutor(2)
    obskit.track_executor(pool, "forks", registry=REGISTRY)
    pools = [_Pool() for _ in range(6)]
    handle = obskit.track_pool(pools[0], "db", registry=REGISTRY)

    def op() -> None:
        with handle.waiting():
            pass
        n = next(_counter) % 5
        obskit.track_pool(pools[n + 1], f"db{n}", registry=REGISTRY)

    return op


def _multiprocess() -> Callable[[], None]:
    return _requests()


SCENARIOS: dict[str, tuple[dict[str, Any], Callable[[], Callable[[], None]]]] = {
    "store": ({}, _store),
    "tenant_guard": ({"label_top_k": 5}, _guard_op),
    "sampler": ({}, _sampler),
    "lanes": ({}, _lanes),
    "log_buffer": ({"log_level": "info", "log_buffer_level": "debug"}, _log_buffer),
    "guard": ({}, _guard_report),
    "runtime": ({}, _init),
    "scrape": ({}, _scrape),
    "requests": ({}, _requests),
    "red": ({}, _red),
    "pools": ({}, _pools),
    "multiprocess": ({"multiprocess_dir": tempfile.mkdtemp(prefix="obskit-forks-")}, _multiprocess),
}


def held(forks: int) -> dict[str, Any]:
    """Every lock obskit owns, held by another thread across each fork: all free in the child."""
    from obskit import _locks

    _start(log_level="info", log_buffer_level="debug", label_top_k=5)
    ops = [make() for _, make in SCENARIOS.values() if make is not _multiprocess]
    for op in ops:
        op()
    locks = [item for item in list(_locks._forkable) if hasattr(item, "acquire")]
    # The registry's lock is prometheus-client's, adopted by obskit at init().
    assert any(item is REGISTRY._lock for item in locks)
    taken: list[Any] = []
    release = threading.Event()
    ready = threading.Event()

    def holder() -> None:
        for item in locks:
            if item.acquire(timeout=1.0):
                taken.append(item)

        ready.set()
        release.wait(120)
        for item in reversed(taken):
            item.release()

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    ready.wait(60)

    def child() -> None:
        for item in locks:
            if not item.acquire(blocking=False):
                raise AssertionError(f"{item!r} is held in the child")
            item.release()
        for op in ops:
            op()

    hangs, failures = _fork_many(forks, child)
    release.set()
    thread.join(5)
    return {
        "scenario": "held",
        "forks": forks,
        "locks": len(locks),
        "held": len(taken),
        "hangs": hangs,
        "failures": failures,
    }


def _child(work: Callable[[], None]) -> None:
    signal.alarm(int(CHILD_TIMEOUT_S) + 5)  # a last resort if the parent's kill failed
    try:
        work()
        _spans(error=True)
        flush(2.0)
        generate_latest(REGISTRY)
        obskit.shutdown(2.0)
    except BaseException as exc:  # report, never run the parent's code on in the child
        sys.stderr.write(f"child failed: {exc!r}\n")
        os._exit(2)
    os._exit(0)


def _fork_many(forks: int, work: Callable[[], None]) -> tuple[int, int]:
    """Fork ``forks`` times, each child running ``work``; (children hung, children failed)."""
    hangs = failures = 0
    for _ in range(forks):
        time.sleep(0.005)
        pid = os.fork()
        if pid == 0:
            _child(work)
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            hangs += 1
            os.kill(pid, signal.SIGUSR1)  # the child's threads' stacks, on stderr
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            continue
        if status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            failures += 1
    return hangs, failures


def hammered(name: str, forks: int) -> dict[str, Any]:
    """One thread runs scenario ``name``'s path without pause while the main thread forks."""
    extra, make = SCENARIOS[name]
    _start(**extra)
    op = make()
    for _ in range(3):  # imports done first: a module lock held at a fork is Python's, not ours
        op()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            op()

    def child() -> None:
        for _ in range(50):
            op()

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        hangs, failures = _fork_many(forks, child)
    finally:
        stop.set()
        thread.join(5)
    return {"scenario": name, "forks": forks, "hangs": hangs, "failures": failures}


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    scenario, count = sys.argv[1], int(sys.argv[2])
    result = held(count) if scenario == "held" else hammered(scenario, count)
    print(json.dumps(result))
