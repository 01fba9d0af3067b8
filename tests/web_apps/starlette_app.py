"""Plain Starlette test service with a mounted application."""

from __future__ import annotations

import _common
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import obskit

_common.setup()


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(request.path_params))


inner = Starlette(routes=[Route("/pages/{page:int}", item)])
app = obskit.ASGIMiddleware(
    Starlette(routes=[Route("/items/{item_id}", item), Mount("/docs/{version}", inner)])
)
