"""Log-trust service (WSGI, for gunicorn): a failing route and a plain one."""

from __future__ import annotations

from flask import Flask

import obskit

obskit.init(log_format="json")
flask_app = Flask("logs_wsgi")
flask_app.config["PROPAGATE_EXCEPTIONS"] = True  # let the exception reach gunicorn, as uvicorn's do


@flask_app.get("/ok")
def ok() -> str:
    return "ok"


@flask_app.get("/boom")
def boom() -> str:
    raise LookupError("no such order")


flask_app.wsgi_app = obskit.WSGIMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
app = flask_app
