"""Flask test service served by gunicorn."""

from __future__ import annotations

import time
from collections.abc import Iterator

import _common
import structlog
from flask import Flask, Response

import obskit

_common.setup()
flask_app = Flask("flask_app")


@flask_app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, object]:
    obskit.get_logger("flask_app").info("handled", item_id=item_id)
    return {"item_id": item_id, "context": obskit.get_context()}


@flask_app.get("/bind")
def bind() -> str:
    # Bound without a token, as handlers do: it must end with this request.
    structlog.contextvars.bind_contextvars(user="alice")
    obskit.bind(order="o-1")
    obskit.get_logger("flask_app").info("bound")
    return "bound"


@flask_app.get("/slow-stream")
def slow_stream() -> Response:
    def chunks() -> Iterator[bytes]:
        for _ in range(250):  # at most 5 s: a client that stays gets it all
            time.sleep(0.02)
            yield b"x" * 4096

    return Response(chunks())


@flask_app.get("/healthz")
def healthz() -> dict[str, object]:
    return {"context": obskit.get_context()}


@flask_app.get("/probe/<name>")
def probe(name: str) -> str:
    return name


@flask_app.get("/<int:id>/update")
def update(id: int) -> str:
    return "ok"


flask_app.wsgi_app = obskit.WSGIMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
app = flask_app
