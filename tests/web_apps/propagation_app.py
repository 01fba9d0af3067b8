"""Two-hop propagation service: ``/relay`` calls ``CALLEE_URL/echo`` through httpx and answers
with the trace headers the callee received (``?fail=1``: with a 500, so the trace is kept)."""

from __future__ import annotations

import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import obskit

obskit.init(log_format="json")


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "traceparent": request.headers.getlist("traceparent"),
            "tracestate": request.headers.getlist("tracestate"),
        }
    )


async def relay(request: Request) -> JSONResponse:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(os.environ["CALLEE_URL"] + "/echo")
    status = 500 if request.query_params.get("fail") else 200
    return JSONResponse(response.json(), status_code=status)


app = obskit.ASGIMiddleware(Starlette(routes=[Route("/echo", echo), Route("/relay", relay)]))
