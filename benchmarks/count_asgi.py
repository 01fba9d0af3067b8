"""Server instructions per request under real uvicorn, counted by valgrind: bare against obskit.

Usage: ``.venv/bin/python benchmarks/count_asgi.py [--parts]`` (about 1 minute; 3 with
``--parts``). Needs ``valgrind`` (Debian package ``valgrind``); it is a measuring tool of this
benchmark only, not a dependency of obskit or of its tests.

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
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEW, MANY = 300, 1300
WARM_UP = 200
CONNECTIONS = 16
START_TIMEOUT_S = 120.0
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _load(port: int, count: int) -> None:
    """``count`` GET requests over ``CONNECTIONS`` keep-alive connections."""
    request = b"GET /items/7 HTTP/1.1\r\nHost: bench\r\n\r\n"
    left = count

    async def client() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left > 0:
                left -= 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CONNECTIONS))), 600)


def _instructions(factory: str, settings: str, requests: int) -> int:
    """Total instructions of one server process that served ``WARM_UP + requests`` requests."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
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
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"uvicorn ({factory}) did not start") from None
                time.sleep(0.3)
        asyncio.run(_load(port, WARM_UP))
        asyncio.run(_load(port, requests))
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


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("count_asgi: valgrind is not installed (Debian package valgrind)")
    variants = {**VARIANTS, **(PARTS if "--parts" in sys.argv[1:] else {})}
    counts = {
        name: per_request(factory, settings) for name, (factory, settings) in variants.items()
    }
    bare = counts["bare"]
    print("uvicorn on loopback, instructions per request (valgrind)\n")
    print("| server | instructions/request | added | bare ÷ this |")
    print("|---|---:|---:|---:|")
    for name, count in counts.items():
        print(f"| {name} | {count:,.0f} | {count - bare:+,.0f} | {bare / count:.3f}x |")


if __name__ == "__main__":
    main()
