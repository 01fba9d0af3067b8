"""ASGI/WSGI middleware, route templates, W3C propagation and outbound HTTP instrumentation."""

from obskit.web.asgi import ASGIMiddleware
from obskit.web.wsgi import WSGIMiddleware

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]
