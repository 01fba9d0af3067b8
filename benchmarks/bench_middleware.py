"""The web middlewares' own cost per request, with obskit's parts switched on one by one.

Usage: ``.venv/bin/python benchmarks/bench_middleware.py [--against DIR]`` (about 40 s; at most
about 75 s with ``--against``).

``bench_asgi.py`` compares obskit's full stack with its peers; this script looks inside it. The
FastAPI app of ``bench_asgi.py`` (ASGI) and a Flask app of one JSON route (WSGI) are called in
process, no sockets, bare and through ``obskit.ASGIMiddleware`` / ``obskit.WSGIMiddleware``:

- middleware only: ``tracing=false access_log=false metrics=false`` (ids, context, header scan,
  route, echo);
- + RED: ``tracing=false access_log=false`` (the request families as well);
- full stack: ``obskit.init()`` defaults (span with tail sampling, access line, RED).

Each configuration runs in its own process (one ``obskit.init()`` each), three times (once past
a one-minute budget). A round calls the bare app, the instrumented app, and the bare app again,
1,000 requests each; "added" is the median over the rounds of instrumented minus the mean of its
two bare neighbours, in CPU time of the benchmark thread (``time.thread_time``), so a shared
machine slows both sides alike; the table shows the median of the processes.

``--against DIR`` also runs every configuration with the obskit source tree ``DIR/src`` (a
checkout of another commit: ``git worktree add /tmp/before <commit>``), side by side.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUESTS_PER_ROUND = 1000
ROUNDS = 5
REPEATS = 3  # processes per configuration and tree, trees alternated; the median is kept
TIME_BUDGET_S = 5.0  # per process; rounds stop early past it
TOTAL_BUDGET_S = 60.0  # past it, each configuration gets one process per tree
CONFIGS = {
    "middleware only": "tracing=false access_log=false metrics=false",
    "+ RED": "tracing=false access_log=false",
    "full stack": "",
}


# --- one configuration, in its own process ----------------------------------------------------


def _asgi_pair() -> tuple[Any, Any, Any]:
    sys.path.insert(0, str(HERE))
    import _asgi_apps
    import obskit
    from bench_asgi import _receive, _scope, _send

    async def calls(app: Any, count: int) -> None:
        for n in range(count):
            await app(_scope(n), _receive, _send)

    loop = asyncio.new_event_loop()

    def run(app: Any, count: int) -> None:
        loop.run_until_complete(calls(app, count))

    return _asgi_apps.fastapi_app(), obskit.ASGIMiddleware(_asgi_apps.fastapi_app()), run


def _flask_app() -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app.wsgi_app


def _environ(n: int) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": f"/items/{n % 100}",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "bench",
        "HTTP_USER_AGENT": "bench/1.0",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _wsgi_pair() -> tuple[Any, Any, Any]:
    import obskit

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def run(app: Any, count: int) -> None:
        for n in range(count):
            body = app(_environ(n), start_response)
            for _ in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return _flask_app(), obskit.WSGIMiddleware(_flask_app()), run


def _worker(protocol: str, settings: list[str]) -> None:
    import obskit
    from obskit.logs import setup as log_setup

    extra = dict(item.split("=", 1) for item in settings)
    obskit.init(
        service_name="bench",
        trace_sink=os.devnull,
        collectors="none",
        log_format="json",
        **extra,  # type: ignore[arg-type]
    )
    log_setup.sink().stream = open(os.devnull, "wb")  # noqa: SIM115 - for the process's life
    bare, instrumented, run = _asgi_pair() if protocol == "asgi" else _wsgi_pair()

    def per_request(app: Any) -> float:
        t0 = time.thread_time()
        run(app, REQUESTS_PER_ROUND)
        return (time.thread_time() - t0) / REQUESTS_PER_ROUND * 1e6

    per_request(instrumented)
    per_request(bare)
    bares, added = [], []
    deadline = time.monotonic() + TIME_BUDGET_S
    for _ in range(ROUNDS):
        before, middle, after = per_request(bare), per_request(instrumented), per_request(bare)
        bares.append((before + after) / 2)
        added.append(middle - (before + after) / 2)
        if time.monotonic() > deadline:
            break
    print(json.dumps({"bare": statistics.median(bares), "added": statistics.median(added)}))


# --- the comparison ---------------------------------------------------------------------------


def _measure(protocol: str, settings: str, src: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", protocol, *settings.split()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    """Measure every configuration (and every tree) and print the tables."""
    trees: dict[str, str | None] = {"this tree": None}
    if "--against" in sys.argv:
        trees[f"against {sys.argv[sys.argv.index('--against') + 1]}"] = str(
            Path(sys.argv[sys.argv.index("--against") + 1]).resolve() / "src"
        )
    started = time.monotonic()
    for protocol, app in (("asgi", "FastAPI"), ("wsgi", "Flask")):
        print(
            f"\n{protocol.upper()} ({app}), {REQUESTS_PER_ROUND} requests x {ROUNDS} rounds,"
            f" median of up to {REPEATS} processes"
        )
        print("\n| configuration | " + " | ".join(f"added µs, {name}" for name in trees) + " |")
        print("|---|" + "---:|" * len(trees))
        bare: list[float] = []
        for label, settings in CONFIGS.items():
            added: dict[str, list[float]] = {name: [] for name in trees}
            for repeat in range(REPEATS):  # trees alternated, so a busy spell hits both
                if repeat and time.monotonic() - started > TOTAL_BUDGET_S:
                    break
                for name, src in trees.items():
                    result = _measure(protocol, settings, src)
                    bare.append(result["bare"])
                    added[name].append(result["added"])
            cells = [f"{statistics.median(values):.1f}" for values in added.values()]
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
        print(f"\nbare {app}: {statistics.median(bare):.1f} µs/request")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3:])
    else:
        main()
