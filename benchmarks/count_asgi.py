"""Instructions per request, counted by valgrind: obskit against the bare app and the peers.

Usage: ``.venv/bin/python benchmarks/count_asgi.py [--parts] [--in-process]`` (about 1 minute;
3 with ``--parts``; ``--in-process`` adds 2). Needs ``valgrind`` (Debian package ``valgrind``); it
is a measuring tool of this benchmark only, not a dependency of obskit or of its tests.

``--in-process`` also counts ``bench_asgi.py`` part 1: the same FastAPI app called through ASGI
in process, bare, with obskit, and with each peer stack, each variant in its own processes.

``bench_asgi.py`` part 2 measures requests per second and the server's CPU time, and on a
shared machine both move by ±20% from run to run. The number of instructions the server executes
per request does not depend on the neighbours' load, so a change of a few percent shows. Each
variant is the same uvicorn server and app as in ``bench_asgi.py`` part 2 (``--no-access-log
--log-level warning``), run under ``valgrind --tool=cachegrind --cache-sim=no``, loaded on
loopback by a bounded keep-alive client (16 connections) with ``FEW`` and then ``MANY``
requests after the same warm-up, in two server processes: the difference of their totals divided
by ``MANY - FEW`` is the steady cost of one request, start-up and shut-down cancelled out.

Instructions are not time: code that misses the caches more costs more per instruction, so the
capacity ratio in time (``bench_asgi.py``) is lower than the ratio printed here. Tail sampling's
baseline is 0 in these runs: with a 1% baseline the few kept traces (≈ 300,000 instructions to
export each) would make the count depend on how many random trace ids fell in the baseline.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_asgi  # noqa: E402

FEW, MANY = 300, 1300
WARM_UP = 200
CONNECTIONS = 16
START_TIMEOUT_S = 120.0
LOAD_TIMEOUT_S = 600.0  # a bound only: under valgrind 1,300 requests take about 20 s
# name -> (factory in _asgi_apps, obskit settings)
VARIANTS = {
    "bare": ("bare", ""),
    "obskit full stack": ("instrumented", "baseline_ratio=0"),
}
PARTS = {
    "obskit, tracing off": ("instrumented", "tracing=false"),
    "obskit, access log off": ("instrumented", "access_log=false,baseline_ratio=0"),
    "obskit, metrics off": ("instrumented", "metrics=false,baseline_ratio=0"),
    "obskit, middleware only": ("instrumented", "tracing=false,access_log=false,metrics=false"),
}


def _instructions(factory: str, settings: str, requests: int) -> int:
    """Total instructions of one server process that served ``WARM_UP + requests`` requests."""
    port = bench_asgi._free_port()
    env = {
        **os.environ,
        "PYTHONPATH": _pythonpath(),
        "PYTHONHASHSEED": "0",
        "BENCH_TRACE_SINK": os.devnull,
        "BENCH_OBSKIT": settings,
    }
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, "-m", "uvicorn", "--factory", f"_asgi_apps:{factory}"]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(
        argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        bench_asgi.wait_listening(proc, port, START_TIMEOUT_S)
        asyncio.run(bench_asgi._load(port, LOAD_TIMEOUT_S, CONNECTIONS, WARM_UP))
        asyncio.run(bench_asgi._load(port, LOAD_TIMEOUT_S, CONNECTIONS, requests))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=START_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = re.search(rb"I\s+refs:\s+([\d,]+)", err)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {err[-500:]!r}")
    return int(found.group(1).replace(b",", b""))


def per_request(factory: str, settings: str) -> float:
    """Steady instructions per request (two servers, ``FEW`` and ``MANY`` requests)."""
    with ThreadPoolExecutor(2) as pool:  # the two processes run side by side
        few = pool.submit(_instructions, factory, settings, FEW)
        many = pool.submit(_instructions, factory, settings, MANY)
        return (many.result() - few.result()) / (MANY - FEW)


def _pythonpath() -> str:
    """This directory, then the caller's PYTHONPATH (set it to another tree's ``src`` to count
    that tree's obskit with these same scripts)."""
    return os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])


# In-process variants (bench_asgi.py part 1): name -> the code that builds ``app``.
IN_PROCESS = {
    "bare FastAPI": "app = _asgi_apps.fastapi_app()",
    "peer (b) Logfire instrument_fastapi + tail sampling": (
        "app, _ = _asgi_apps.peer_logfire_stack()"
    ),
    "peer (a) OTel + prometheus-instrumentator + asgi-correlation-id + structlog": (
        "app, _ = _asgi_apps.peer_otel_stack()"
    ),
    "obskit full stack": "app, _ = bench_asgi._obskit_stack(os.devnull)",
}
_IN_PROCESS_RUN = """
import asyncio, os, sys
import _asgi_apps, bench_asgi
{build}
async def run(count):
    for n in range(count):
        await app(bench_asgi._scope(n), bench_asgi._receive, bench_asgi._send)
loop = asyncio.new_event_loop()
loop.run_until_complete(run({warm_up}))
loop.run_until_complete(run(int(sys.argv[1])))
"""


def _in_process_instructions(build: str, requests: int) -> int:
    code = _IN_PROCESS_RUN.format(build=build, warm_up=WARM_UP)
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, "-c", code, str(requests)]
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, cwd=HERE, env=env, capture_output=True, timeout=900, check=True)
    found = re.search(rb"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-500:]!r}")
    return int(found.group(1).replace(b",", b""))


def in_process_per_request(build: str) -> float:
    """Steady instructions per in-process request of the app ``build`` makes."""
    with ThreadPoolExecutor(2) as pool:
        few = pool.submit(_in_process_instructions, build, FEW)
        many = pool.submit(_in_process_instructions, build, MANY)
        return (many.result() - few.result()) / (MANY - FEW)


def _print_table(counts: dict[str, float], bare: float, obskit: float | None = None) -> None:
    """One row per variant; with ``obskit``, also obskit's added count ÷ the variant's."""
    head = "| variant | instructions/request | added | bare ÷ this |"
    print(head if obskit is None else head + " obskit added ÷ added |")
    print("|---|---:|---:|---:|" + ("" if obskit is None else "---:|"))
    for name, count in counts.items():
        added = count - bare
        row = f"| {name} | {count:,.0f} | {added:+,.0f} | {bare / count:.3f}x |"
        if obskit is not None:
            row += f" {(obskit - bare) / added:.3f}x |" if added > 0 else " |"
        print(row)


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("count_asgi: valgrind is not installed (Debian package valgrind)")
    args = sys.argv[1:]
    if "--in-process" in args:
        # The obskit variant of part 1 keeps its 1% baseline: the peers sample as they would.
        inner = {name: in_process_per_request(build) for name, build in IN_PROCESS.items()}
        print("In process (bench_asgi.py part 1), instructions per request (valgrind)\n")
        _print_table(inner, inner["bare FastAPI"], inner["obskit full stack"])
        print()
    variants = {**VARIANTS, **(PARTS if "--parts" in args else {})}
    counts = {name: per_request(*variant) for name, variant in variants.items()}
    print("uvicorn on loopback, instructions per request (valgrind)\n")
    _print_table(counts, counts["bare"])


if __name__ == "__main__":
    main()
