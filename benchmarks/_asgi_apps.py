"""The application the ASGI benchmark serves through uvicorn, bare and with obskit (factories)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

# FastAPI's own telemetry would switch itself on whenever a global tracer provider exists; the
# benchmark compares the instrumentation stacks, so it stays off in every variant.
NO_NATIVE_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False}


def fastapi_app() -> FastAPI:
    """One small JSON route with a path parameter."""
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


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
