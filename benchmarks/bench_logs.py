"""One info line: obskit's full chain against a plain structlog JSON chain and stdlib + json-logger;
one access line: obskit's (as the middleware writes it) against the same fields through structlog.

Run: ``.venv/bin/python benchmarks/bench_logs.py`` (about 20 s). Every info variant writes the same
event (two keyword fields, a bound correlation id and tenant id) to ``/dev/null``; obskit's line
also carries the active span's trace and span ids and goes through redaction. The redaction rows
write obskit's line, and a heavier one (a sentence, a URL with a query, a headers dict; the same
URL on every line, or a distinct one), with the redaction policy as configured and with secret
replacement off (bounds only): the difference is what redaction costs a line. The access lines
carry the request's fields and the same ids. Variants are interleaved and each figure is the
median of the repeats, so a busy machine slows all alike. Last, the access line's cost inside
real requests (a line costs more there than in a tight loop, where its code stays in cache).
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from collections.abc import Callable

import structlog

N = 20_000
REPEATS = 9
REQUESTS = 1_000
REQUEST_ROUNDS = 11


def obskit_line() -> Callable[[], None]:
    from opentelemetry.sdk.trace import TracerProvider

    import obskit
    from obskit.logs import setup as log_setup

    obskit.init(service_name="bench", log_stream="stderr", log_format="json", metrics=False)
    log_setup.sink().stream = open(os.devnull, "wb")  # noqa: SIM115 - lives for the run
    log = obskit.get_logger("bench")
    span = TracerProvider().get_tracer("bench").start_span("request")
    from opentelemetry import trace

    def call() -> None:
        with trace.use_span(span), obskit.bound(correlation_id="c0ffee", tenant_id="acme"):
            for _ in range(N):
                log.info("order.placed", order_id=1234, amount=9.99)

    return call


def obskit_line_redaction(shape: str, secrets: bool) -> Callable[[], None]:
    """obskit's line (after obskit_line() ran init()) with the policy's secret replacement on
    or off (bounds only), swapped in for the run of the variant only."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    import obskit
    from obskit.logs import redaction
    from obskit.logs import setup as log_setup

    log = obskit.get_logger("bench")
    span = TracerProvider().get_tracer("bench").start_span("request")
    enricher = log_setup._writer.enricher
    assert enricher is not None
    configured = redaction.current()
    policy = configured if secrets else redaction.Redactor(secrets=False)
    url = "https://api.example.com/v1/orders?page=2&sort=asc"
    headers = {"accept": "application/json", "user-agent": "python-httpx/0.28.1"}

    def call() -> None:
        enricher.redactor = policy
        try:
            with trace.use_span(span), obskit.bound(correlation_id="c0ffee", tenant_id="acme"):
                if shape == "heavier line":
                    for _ in range(N):
                        log.info(
                            "calling the payment service", url=url, status=200, headers=headers
                        )
                elif shape == "distinct URLs":
                    for i in range(N):
                        log.info(
                            "calling the payment service",
                            url=f"https://api.example.com/v1/orders/{i}?page=2",
                            status=200,
                            headers=headers,
                        )
                else:
                    for _ in range(N):
                        log.info("order.placed", order_id=1234, amount=9.99)
        finally:
            enricher.redactor = configured

    return call


REDACTION_SHAPES = ("obskit line", "heavier line", "distinct URLs")
ACCESS = ("GET", "/items/{item_id}", "/items/7", 200, 0.001234, 0.000456, 42, "10.0.0.1", "")


def obskit_access_line() -> Callable[[], None]:
    """The middleware's access line as it writes it: inside the request's context and span."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from obskit import context
    from obskit.web.access_log import AccessLog

    access = AccessLog()  # after obskit_line() has run init()
    span = TracerProvider().get_tracer("bench").start_span("GET /items/{item_id}")
    fields = {"correlation_id": "c0ffee", "tenant_id": "acme"}

    def call() -> None:
        token = context.push(fields)
        try:
            with trace.use_span(span):
                for _ in range(N):
                    access.write(*ACCESS, None, fields)
        finally:
            context.pop(token)

    return call


def structlog_access_line() -> Callable[[], None]:
    """The same fields through a plain structlog JSON chain with orjson (the peer stack's line)."""
    import orjson
    from structlog.contextvars import bound_contextvars, merge_contextvars

    log = structlog.wrap_logger(
        structlog.BytesLogger(open(os.devnull, "wb")),  # noqa: SIM115
        processors=[
            merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(logger="access")
    method, route, path, status, duration, ttfb, size, client, _ = ACCESS

    def call() -> None:
        with bound_contextvars(correlation_id="c0ffee", tenant_id="acme"):
            for _ in range(N):
                log.info(
                    "http.request", method=method, route=route, path=path, status=status,
                    duration_ms=int(duration * 1e6) / 1000.0, bytes=size,
                    ttfb_ms=int(ttfb * 1e6) / 1000.0, client=client,
                )  # fmt: skip

    return call


def _plain_structlog(serializer: str) -> Callable[[], None]:
    from structlog.contextvars import bound_contextvars, merge_contextvars

    processors: list[object] = [
        merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if serializer == "orjson":
        import orjson

        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        logger: object = structlog.BytesLogger(open(os.devnull, "wb"))  # noqa: SIM115
    else:
        processors.append(structlog.processors.JSONRenderer())
        logger = structlog.WriteLogger(open(os.devnull, "w"))  # noqa: SIM115
    log = structlog.wrap_logger(
        logger,
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(logger="bench")

    def call() -> None:
        with bound_contextvars(correlation_id="c0ffee", tenant_id="acme"):
            for _ in range(N):
                log.info("order.placed", order_id=1234, amount=9.99)

    return call


def stdlib_json_logger() -> Callable[[], None]:
    from pythonjsonlogger.json import JsonFormatter

    logger = logging.getLogger("bench.stdlib")
    logger.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    extra = {"correlation_id": "c0ffee", "tenant_id": "acme", "order_id": 1234, "amount": 9.99}

    def call() -> None:
        for _ in range(N):
            logger.info("order.placed", extra=extra)

    return call


def access_line_in_requests() -> tuple[float, float]:
    """The access line's CPU time inside real requests: a FastAPI app through the middleware in
    process (no sockets), rounds with and without the line alternated in one process; the
    median of the paired differences, and the median request with the line (µs)."""
    import asyncio

    import obskit
    from _asgi_apps import fastapi_app
    from bench_asgi import _receive, _scope, _send
    from obskit.logs import setup as log_setup
    from obskit.web import exchange

    obskit.init(
        service_name="bench",
        trace_sink=os.devnull,
        collectors="none",
        log_format="json",
        log_stream="stderr",
    )
    log_setup.sink().stream = open(os.devnull, "wb")  # noqa: SIM115 - lives for the run
    app = obskit.ASGIMiddleware(fastapi_app())

    async def run(count: int) -> float:
        start = time.thread_time()
        for i in range(count):
            await app(_scope(i), _receive, _send)
        return (time.thread_time() - start) / count * 1e6

    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(500))
    plan = exchange.current_plan()
    assert plan is not None
    assert plan.access_log is not None
    access = plan.access_log
    with_line, without = [], []
    for _ in range(REQUEST_ROUNDS):
        plan.access_log = access
        with_line.append(loop.run_until_complete(run(REQUESTS)))
        plan.access_log = None
        without.append(loop.run_until_complete(run(REQUESTS)))
    plan.access_log = access
    loop.close()
    added = statistics.median(a - b for a, b in zip(with_line, without, strict=True))
    return added, statistics.median(with_line)


def main() -> None:
    variants = {
        "structlog plain JSON (stdlib json)": _plain_structlog("json"),
        "structlog plain JSON (orjson)": _plain_structlog("orjson"),
        "stdlib logging + python-json-logger": stdlib_json_logger(),
        "obskit full chain": obskit_line(),
        **{
            f"{shape}, redaction {'on' if on else 'off'}": obskit_line_redaction(shape, on)
            for shape in REDACTION_SHAPES
            for on in (True, False)
        },
        "structlog access line (orjson)": structlog_access_line(),
        "obskit access line": obskit_access_line(),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) / N * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"median of {REPEATS} x {N} lines, Python {sys.version.split()[0]}")
    print(f"{'one info line':40} {'us/line':>8} {'obskit / variant':>17}")
    ours = medians["obskit full chain"]
    for name in list(variants)[:4]:
        print(f"{name:40} {medians[name]:8.2f} {ours / medians[name]:17.2f}x")
    print(f"{'redaction (obskit line)':40} {'us/line':>8} {'redaction costs':>17}")
    for shape in REDACTION_SHAPES:
        on, off = medians[f"{shape}, redaction on"], medians[f"{shape}, redaction off"]
        print(f"{shape + ', redaction on':40} {on:8.2f} {on - off:14.2f} us")
        print(f"{shape + ', redaction off (bounds only)':40} {off:8.2f}")
    print(f"{'one access line':40} {'us/line':>8} {'obskit / variant':>17}")
    ours = medians["obskit access line"]
    for name in list(variants)[4 + 2 * len(REDACTION_SHAPES) :]:
        print(f"{name:40} {medians[name]:8.2f} {ours / medians[name]:17.2f}x")
    added, request = access_line_in_requests()
    print(
        f"obskit access line inside a request (FastAPI in process, CPU time, {REQUEST_ROUNDS} "
        f"paired rounds of {REQUESTS}): {added:.1f} us of a {request:.1f} us request"
    )


if __name__ == "__main__":
    main()
