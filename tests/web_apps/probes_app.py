"""FastAPI service with the probes and the scrape endpoint a deployment has, for exclusions."""

from __future__ import annotations

import _common
from fastapi import FastAPI

import obskit

_common.setup()
api = FastAPI()
log = obskit.get_logger("probes_app")


@api.get("/items/{item_id}")
async def item(item_id: str) -> dict[str, str]:
    return {"item_id": item_id}


@api.get("/healthz")
async def healthz() -> dict[str, object]:
    log.info("probed", context=obskit.get_context())
    return {"context": obskit.get_context()}


@api.get("/probe/{name}")
async def probe(name: str) -> str:
    return name


api.mount("/metrics", obskit.metrics_asgi_app())  # as docs/metrics.md shows it
app = obskit.ASGIMiddleware(api)
