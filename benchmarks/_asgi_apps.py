"""The application the ASGI benchmark measures, bare, with obskit and with the two peer stacks.

The builders are shared by both parts of ``bench_asgi.py``; the argument-less functions at the
end are the factories uvicorn starts (``uvicorn --factory _asgi_apps:NAME``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

# FastAPI's own telemetry would switch itself on whenever a global tracer provider exists; the
# benchmark compares the instrumentation stacks, so it stays off in every variant.
NO_NATIVE_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False}

Flush = Callable[[], Any]


def fastapi_app() -> FastAPI:
    """One small JSON route with a path parameter."""
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


class _Discard:
    """A span exporter that accepts and drops everything (no network in a benchmark)."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def peer_otel_stack() -> tuple[Any, Flush]:
    """Peer (a): OpenTelemetry FastAPIInstrumentor, prometheus-fastapi-instrumentator,
    asgi-correlation-id and a structlog access line; and its span pipeline's flush."""
    import structlog
    from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    access = structlog.wrap_logger(
        structlog.PrintLogger(devnull),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
    )

    class StructlogAccessLog:
        """A typical hand-written pure-ASGI access-log middleware."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            status = [0]

            async def send_wrapper(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                access.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status[0],
                    duration_ms=(time.perf_counter() - start) * 1000,
                    request_id=correlation_id.get(),
                )

    app = fastapi_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    app.add_middleware(StructlogAccessLog)
    app.add_middleware(CorrelationIdMiddleware)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard()))  # type: ignore[arg-type]
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app, provider.force_flush


def peer_logfire_stack() -> tuple[Any, Flush]:
    """Peer (b): Logfire's instrument_fastapi with tail sampling; and its flush."""
    import logfire
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    logfire.configure(
        send_to_logfire=False,
        console=False,
        metrics=False,
        service_name="bench",
        sampling=logfire.SamplingOptions.level_or_duration(background_rate=0.01),
        additional_span_processors=[SimpleSpanProcessor(_Discard())],  # type: ignore[arg-type]
    )
    app = fastapi_app()
    logfire.instrument_fastapi(app)
    return app, logfire.force_flush


def bare() -> Any:
    """uvicorn --factory: the app alone."""
    return fastapi_app()


def instrumented() -> Any:
    """uvicorn --factory: obskit's full stack (span + tail sampling, RED, context, access log)."""
    import obskit
    from obskit.logs import setup as log_setup

    # BENCH_OBSKIT="tracing=false,access_log=false" switches parts off to see what each costs.
    extra = dict(
        item.split("=", 1) for item in os.environ.get("BENCH_OBSKIT", "").split(",") if "=" in item
    )
    obskit.init(
        service_name="bench",
        trace_sink=os.environ.get("BENCH_TRACE_SINK", os.devnull),
        collectors="none",
        log_format="json",
        **extra,
    )
    log_setup.sink().stream = open(os.devnull, "wb")  # noqa: SIM115 - for the process's life
    return obskit.ASGIMiddleware(fastapi_app())


def peer_otel() -> Any:
    """uvicorn --factory: peer (a), the OpenTelemetry + instrumentator + correlation-id stack."""
    return peer_otel_stack()[0]


def peer_logfire() -> Any:
    """uvicorn --factory: peer (b), Logfire with tail sampling."""
    return peer_logfire_stack()[0]
