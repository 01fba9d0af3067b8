"""One info line: obskit's full chain against a plain structlog JSON chain and stdlib + json-logger.

Run: ``.venv/bin/python benchmarks/bench_logs.py`` (about 20 s). Every variant writes the same
event (two keyword fields, a bound correlation id and tenant id) to ``/dev/null``; obskit's line
also carries the active span's trace and span ids and goes through redaction. Variants are
interleaved and each figure is the median of the repeats, so a busy machine slows all alike.
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


def main() -> None:
    variants = {
        "structlog plain JSON (stdlib json)": _plain_structlog("json"),
        "structlog plain JSON (orjson)": _plain_structlog("orjson"),
        "stdlib logging + python-json-logger": stdlib_json_logger(),
        "obskit full chain": obskit_line(),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) / N * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ours = medians["obskit full chain"]
    print(f"one info line, median of {REPEATS} x {N} lines, Python {sys.version.split()[0]}")
    print(f"{'variant':40} {'us/line':>8} {'obskit / variant':>17}")
    for name, value in medians.items():
        print(f"{name:40} {value:8.2f} {ours / value:17.2f}x")


if __name__ == "__main__":
    main()
