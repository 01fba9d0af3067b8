"""obskit's ASGI middleware against a bare FastAPI app and two peer stacks; then real uvicorn.

Usage: ``.venv/bin/python benchmarks/bench_asgi.py`` (about 3 minutes). The peers are in the
``dev`` extra: opentelemetry-instrumentation-fastapi, prometheus-fastapi-instrumentator,
asgi-correlation-id, logfire.

Part 1, in process (no sockets): each variant is the same FastAPI app, called through ASGI with
a fresh scope per request. Variants run in interleaved rounds and the median per-request time
of each is kept, so a busy machine slows all of them alike. "Added" is the variant minus bare.
Time is the CPU time of the whole process, and each round ends by flushing its variant's span
pipeline: a stack's exporter threads are part of its cost, and their work must not fall into
the next variant's round (it did while only the benchmark thread was timed, adding ≈ 15 µs per
request to whichever variant followed the OpenTelemetry stack).

- obskit: ``obskit.init()`` defaults (tail sampling with a 1% baseline, kept traces to the local
  sink file, RED, context, one JSON access line per request) + ``obskit.ASGIMiddleware``.
- peer (a): OpenTelemetry ``FastAPIInstrumentor`` (SDK provider, batch processor, an exporter that
  discards) + prometheus-fastapi-instrumentator + asgi-correlation-id + a pure-ASGI structlog
  access-log middleware (merge_contextvars, add_log_level, TimeStamper, JSONRenderer).
- peer (b): Logfire ``instrument_fastapi`` with tail sampling (``level_or_duration`` with a 1%
  background rate), spans to an exporter that discards, nothing sent over the network.

Every log line goes to /dev/null. Part 2 runs uvicorn on loopback: bare, obskit, obskit with
tracing or the access log off, the middleware alone, and the two peer stacks of part 1 (the same
builders, in ``_asgi_apps.py``), so capacity is compared side by side with them. All servers are
started once; then in each round a bounded keep-alive load generator in this process loads each of
them for a short burst, in a shuffled order, and the server's CPU time per request (all its
threads, from ``/proc/<pid>/task/*/schedstat``) is compared with the bare server's in the same
round. A second, identical bare server shows how far two equal servers differ on the machine at
that time. uvicorn runs with ``--no-access-log --log-level warning`` (the bare server writes no
line at all), and, in two more rows, with its defaults: the bare server then writes uvicorn's own
access line, which obskit's replaces.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _asgi_apps  # noqa: E402

REQUESTS_PER_ROUND = 1000
ROUNDS = 7
TIME_BUDGET_S = 35.0
LOAD_CONNECTIONS = 32
LOAD_ROUNDS = 15
BURST_S = 1.0
WARM_UP_S = 1.0
START_TIMEOUT_S = 30.0
# uvicorn servers of part 2: name -> (factory, obskit settings switched off to see their share,
# uvicorn's own defaults: its access log on at log level info; else --no-access-log at warning).
SERVERS = {
    "bare": ("bare", "", False),
    # The same bare server again: how far two identical servers differ is the run's noise.
    "bare, a second server (noise)": ("bare", "", False),
    "obskit full stack": ("instrumented", "", False),
    "obskit, tracing off": ("instrumented", "tracing=false", False),
    "obskit, access log off": ("instrumented", "access_log=false", False),
    "obskit, middleware only": (
        "instrumented",
        "tracing=false,access_log=false,metrics=false",
        False,
    ),
    "peer (a) OTel + prometheus-instrumentator + asgi-correlation-id + structlog": (
        "peer_otel",
        "",
        False,
    ),
    "peer (b) Logfire instrument_fastapi + tail sampling": ("peer_logfire", "", False),
    "bare, uvicorn's defaults (its access log on)": ("bare", "", True),
    "obskit full stack, uvicorn's defaults": ("instrumented", "", True),
}
_BARE_DEFAULTS = "bare, uvicorn's defaults (its access log on)"
_OBSKIT = "obskit full stack"
_PEERS = (
    "peer (a) OTel + prometheus-instrumentator + asgi-correlation-id + structlog",
    "peer (b) Logfire instrument_fastapi + tail sampling",
)


# --- part 1: in process ---------------------------------------------------------------------


def _scope(n: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/items/{n % 100}",
        "raw_path": f"/items/{n % 100}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


Flush = _asgi_apps.Flush


async def _run(app: Any, count: int, flush: Flush | None = None) -> float:
    """CPU seconds per request of this whole process (every thread), ``flush`` included.

    CPU time, not wall time: on a shared machine the wall clock also counts the time other
    processes held the CPU. The whole process, not this thread: a stack's exporter threads are
    part of its cost. ``flush`` drains the variant's export pipeline before the clock stops, so
    its background work is counted in its own round and never in the next variant's.
    """
    t0 = time.process_time()
    for n in range(count):
        await app(_scope(n), _receive, _send)
    if flush is not None:
        flush()
    return (time.process_time() - t0) / count


def _obskit_stack(sink: str) -> tuple[Any, Flush]:
    import obskit
    import obskit.testing
    from obskit.logs import setup as log_setup

    obskit.init(service_name="bench", trace_sink=sink, collectors="none", log_format="json")
    log_setup.sink().stream = open(os.devnull, "wb")  # noqa: SIM115
    return obskit.ASGIMiddleware(_asgi_apps.fastapi_app()), obskit.testing.flush


def in_process(sink: str) -> dict[str, float]:
    # Logfire first: it sets the global tracer provider, which obskit then leaves alone (obskit
    # uses its own tracer either way).
    variants: dict[str, tuple[Any, Flush | None]] = {
        "bare FastAPI": (_asgi_apps.fastapi_app(), None),
        "peer (b) Logfire instrument_fastapi + tail sampling": _asgi_apps.peer_logfire_stack(),
        "peer (a) OTel + prometheus-instrumentator + asgi-correlation-id + structlog": (
            _asgi_apps.peer_otel_stack()
        ),
        "obskit full stack": _obskit_stack(sink),
    }
    loop = asyncio.new_event_loop()
    for app, flush in variants.values():  # warm up (first-use caches, imports)
        loop.run_until_complete(_run(app, 200, flush))
    samples: dict[str, list[float]] = {name: [] for name in variants}
    deadline = time.monotonic() + TIME_BUDGET_S
    for _ in range(ROUNDS):
        for name, (app, flush) in variants.items():
            gc.collect()
            samples[name].append(loop.run_until_complete(_run(app, REQUESTS_PER_ROUND, flush)))
        if time.monotonic() > deadline:
            break
    loop.close()
    return {name: statistics.median(values) for name, values in samples.items()}


# --- part 2: real uvicorn ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    """Wait until the server ``proc`` accepts connections on ``port``; raise if it exits first
    or does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the server on port {port} did not start") from None
            time.sleep(0.1)


def _cpu_ns(pid: int) -> int:
    """CPU time all the process's threads have run, in nanoseconds (Linux ``/proc``).

    ``schedstat`` counts nanoseconds; a kernel without it leaves ``stat``'s clock ticks (10 ms).
    """
    total = 0
    found = False
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    if found:
        return total
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


async def _load(
    port: int, seconds: float, connections: int, count: int | None = None
) -> tuple[float, int]:
    """Requests per second and requests done by ``connections`` keep-alive clients, for
    ``seconds`` or, with ``count``, until that many requests are done (whichever comes first)."""
    request = b"GET /items/7 HTTP/1.1\r\nHost: bench\r\n\r\n"
    done = 0
    started = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, started
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop and (count is None or started < count):
                started += 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - t0), done


class _Server:
    """One uvicorn server of part 2, started once and loaded in short bursts."""

    def __init__(self, factory: str, sink: str, settings: str, uvicorn_defaults: bool) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "BENCH_TRACE_SINK": sink,
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "BENCH_OBSKIT": settings,
        }
        argv = [sys.executable, "-m", "uvicorn", "--factory", f"_asgi_apps:{factory}"]
        argv += ["--port", str(self.port)]
        if not uvicorn_defaults:
            argv += ["--no-access-log", "--log-level", "warning"]
        if _PINS is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(_PINS[0]), *argv]
        quiet = subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, cwd=HERE, env=env, stdout=quiet, stderr=quiet)

    def wait_ready(self) -> None:
        wait_listening(self.proc, self.port, START_TIMEOUT_S)
        asyncio.run(_load(self.port, WARM_UP_S, LOAD_CONNECTIONS))

    def burst(self) -> tuple[float, float]:
        """Requests/s under load for BURST_S, and the server's CPU seconds per request."""
        cpu0 = _cpu_ns(self.proc.pid)
        rate, done = asyncio.run(_load(self.port, BURST_S, LOAD_CONNECTIONS))
        return rate, (_cpu_ns(self.proc.pid) - cpu0) / 1e9 / max(done, 1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# (server CPU, load generator CPU) when the machine has two CPUs or more: each keeps its own
# CPU's caches, and neither is moved onto the other's (which made the server's CPU time per
# request move by ±20% between runs of the same server).
_cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
_PINS: tuple[int, int] | None = (_cpus[0], _cpus[1]) if len(_cpus) >= 2 else None


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, mid, high


def throughput(sink: str) -> dict[str, tuple[float, float, tuple[float, float, float]]]:
    """Per server: medians of requests/s and of CPU per request, and the quartiles of the
    per-round capacity ratio (the bare server's CPU per request over this one's, same round).

    Every server is started once and warmed up; then each round loads each of them for BURST_S,
    in a shuffled order, so that a neighbour's load on the shared machine falls on all of them
    alike and a round's ratio compares bursts seconds apart.
    """
    servers = {
        name: _Server(factory, sink, settings, defaults)
        for name, (factory, settings, defaults) in SERVERS.items()
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVERS}
    previous = os.sched_getaffinity(0) if _PINS is not None else None
    try:
        if _PINS is not None:
            os.sched_setaffinity(0, {_PINS[1]})
        for server in servers.values():
            server.wait_ready()
        order = list(servers)
        shuffle = random.Random(5).shuffle  # the same orders in every run
        for _ in range(LOAD_ROUNDS):
            shuffle(order)
            for name in order:
                results[name].append(servers[name].burst())
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)
        for server in servers.values():
            server.stop()
    summary = {}
    for name, values in results.items():
        bare = results[_bare_of(name)]
        paired = [b_cpu / cpu for (_, b_cpu), (_, cpu) in zip(bare, values, strict=True)]
        summary[name] = (
            statistics.median(r for r, _ in values),
            statistics.median(c for _, c in values),
            _quartiles(paired),
        )
    return summary


def _bare_of(name: str) -> str:
    """The row ``name`` is compared with: the bare app under the same uvicorn settings."""
    return _BARE_DEFAULTS if SERVERS[name][2] else "bare"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sink = str(Path(tmp) / "kept-spans.jsonl")
        medians = in_process(sink)
        bare = medians["bare FastAPI"]
        ours = medians["obskit full stack"] - bare
        print(f"Part 1 — in process, {REQUESTS_PER_ROUND} requests x {ROUNDS} rounds, medians\n")
        print("| variant | µs/request | added µs | obskit added ÷ variant added |")
        print("|---|---:|---:|---:|")
        for name, value in medians.items():
            added = value - bare
            ratio = f"{ours / added:.2f}x" if added > 0 and name != "bare FastAPI" else ""
            print(f"| {name} | {value * 1e6:.1f} | {added * 1e6:.1f} | {ratio} |")
        rates = throughput(sink)
        print(
            f"\nPart 2 — uvicorn on loopback, {LOAD_CONNECTIONS} keep-alive connections, "
            f"{LOAD_ROUNDS} rounds of one {BURST_S:.0f} s burst per server, medians"
            + (f"; servers on CPU {_PINS[0]}, load on CPU {_PINS[1]}" if _PINS else "")
            + "\n"
        )
        # On a shared machine requests/s also measures the neighbours; the server's own CPU time
        # per request does not, and 1 / (CPU per request) is what one worker can serve.
        # Each row is compared with the bare app under the same uvicorn settings.
        print(
            "| server | requests/s | ÷ bare | server CPU µs/request "
            "| capacity ÷ bare, per round: median (quartiles) |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, (rate, cpu, (low, mid, high)) in rates.items():
            bare_rate = rates[_bare_of(name)][0]
            print(
                f"| {name} | {rate:.0f} | {rate / bare_rate:.2f}x | {cpu * 1e6:.0f} "
                f"| {mid:.2f}x ({low:.2f} to {high:.2f}) |"
            )
        # Capacity side by side with the peers: the server CPU each stack adds per request over
        # the bare server, obskit's over the peer's (the ratio part 1 gives in process).
        bare_cpu = rates["bare"][1]
        ours_cpu = rates[_OBSKIT][1] - bare_cpu
        print("\n| under uvicorn | added server CPU µs/request | obskit added ÷ variant added |")
        print("|---|---:|---:|")
        for name in (*_PEERS, _OBSKIT):
            added = rates[name][1] - bare_cpu
            ratio = f"{ours_cpu / added:.2f}x" if added > 0 else "n/a"
            print(f"| {name} | {added * 1e6:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
