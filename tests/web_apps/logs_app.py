"""Log-trust service (ASGI): a failing route, a route whose trace is kept with chatty libraries'
debug lines, and a plain route."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import obskit

obskit.init(log_format="json")
log = obskit.get_logger("logs_app")


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def boom(request: Request) -> PlainTextResponse:
    raise LookupError("no such order")


async def chatty(request: Request) -> PlainTextResponse:
    # What an HTTP client, urllib3, h2 and asyncio write at debug level during one request.
    for name in ("httpcore.http11", "httpx", "urllib3.connectionpool", "hpack.hpack", "asyncio"):
        logging.getLogger(name).debug("%s internals", name)
    log.debug("app detail")
    return PlainTextResponse("slow and failing", status_code=503)


app = obskit.ASGIMiddleware(
    Starlette(routes=[Route("/ok", ok), Route("/boom", boom), Route("/chatty", chatty)])
)
