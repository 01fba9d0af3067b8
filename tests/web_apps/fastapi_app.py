"""FastAPI test service: item routes, an included router, a mounted sub-app, an outbound call."""

from __future__ import annotations

import asyncio
import os

import _common
import httpx
import structlog
from fastapi import APIRouter, FastAPI

import obskit

_common.setup()
api = FastAPI()
router = APIRouter(prefix="/orders")
sub = FastAPI()
log = obskit.get_logger("fastapi_app")


@api.get("/items/{item_id}")
async def item(item_id: str) -> dict[str, object]:
    await asyncio.sleep(0.001)  # interleave concurrent requests
    log.info("handled", item_id=item_id)
    return {"item_id": item_id, "context": obskit.get_context()}


@api.get("/bind")
async def bind() -> str:
    # Bound without a token, as handlers do: it must end with this request.
    structlog.contextvars.bind_contextvars(user="alice")
    obskit.bind(order="o-1")
    log.info("bound")
    return "bound"


@router.get("/{order_id}/lines")
async def lines(order_id: str) -> list[str]:
    return [order_id]


@sub.get("/users/{uid}")
async def user(uid: str) -> str:
    return uid


@api.get("/call")
async def call() -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        response = await client.get(os.environ["CALLEE_URL"] + "/items/from-caller")
    return {"callee": response.json(), "context": obskit.get_context()}


api.include_router(router)
api.mount("/sub", sub)
app = obskit.ASGIMiddleware(api)
