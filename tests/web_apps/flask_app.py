"""Flask test service served by gunicorn."""

from __future__ import annotations

import _common
from flask import Flask

import obskit

_common.setup()
flask_app = Flask("flask_app")


@flask_app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, object]:
    obskit.get_logger("flask_app").info("handled", item_id=item_id)
    return {"item_id": item_id, "context": obskit.get_context()}


@flask_app.get("/<int:id>/update")
def update(id: int) -> str:
    return "ok"


flask_app.wsgi_app = obskit.WSGIMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
app = flask_app
