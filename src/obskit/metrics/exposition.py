"""Serving /metrics: an ASGI app, a WSGI app and a standalone server, all prometheus-client output.

The format follows the scraper's ``Accept`` header (OpenMetrics, which carries exemplars, or the
Prometheus text format); the body is gzipped when ``Accept-Encoding`` allows. Without an explicit
``registry`` each scrape reads the *current* runtime: an app created before ``init()`` serves what
``init()`` wires later, and in multi-process mode it serves the totals of every worker.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from obskit import _live

__all__ = [
    "MetricsASGIApp",
    "MetricsServer",
    "metrics_asgi_app",
    "metrics_django_view",
    "metrics_wsgi_app",
    "render",
    "start_metrics_server",
]

_log = logging.getLogger("obskit")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def scrape_source(registry: Collector | None = None) -> Collector:
    """What a scrape reads: ``registry`` if given, else the current runtime's metrics."""
    if registry is not None:
        return registry
    component = _live.metrics()
    if component is not None:
        return component.scrape_source()
    runtime = _live.current()
    return runtime.registry if runtime is not None else REGISTRY


def render(
    source: Collector, accept: str | None, accept_encoding: str | None
) -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers of one scrape of ``source``."""
    encoder, content_type = choose_encoder(accept or "")
    body: bytes = encoder(source)
    headers = [("Content-Type", content_type)]
    if accept_encoding and gzip_accepted(accept_encoding):
        body = gzip.compress(body, compresslevel=6)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return body, headers


class Combined(Collector):
    """Several collectors exposed as one (a runtime's registry plus multi-process files)."""

    def __init__(self, *parts: Collector) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()


# --- WSGI ---------------------------------------------------------------------------------------


def metrics_wsgi_app(registry: Collector | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app answering every GET/HEAD with the metrics exposition."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        body, headers = render(
            scrape_source(registry), environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING")
        )
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]

    return app


# --- Django -------------------------------------------------------------------------------------


def metrics_django_view(request: Any) -> Any:
    """A Django view answering GET/HEAD with the metrics exposition of the current runtime.

    ``path("metrics", obskit.metrics_django_view)`` in ``urlpatterns``; Django is imported only
    when a scrape arrives. The runtime's default ``exclude`` keeps ``/metrics`` out of RED.
    """
    from django.http import HttpResponse, HttpResponseNotAllowed

    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    body, headers = render(
        scrape_source(None), request.headers.get("Accept"), request.headers.get("Accept-Encoding")
    )
    response = HttpResponse(b"" if request.method == "HEAD" else body)
    for name, value in headers:
        response[name] = value
    return response


# --- ASGI ---------------------------------------------------------------------------------------


class MetricsASGIApp:
    """A pure ASGI app answering every GET/HEAD with the metrics exposition.

    An object rather than a function so that Starlette and FastAPI serve it as an ASGI endpoint
    of an exact route (``app.add_route("/metrics", obskit.metrics_asgi_app())``) as well as under
    a ``Mount``; ``obskit.ASGIMiddleware`` answers the mount's own path (``/metrics``) without
    Starlette's redirect to ``/metrics/``.
    """

    def __init__(self, registry: Collector | None = None) -> None:
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, [(b"allow", b"GET, HEAD")], b"")
            return
        accept = accept_encoding = None
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"accept-encoding":
                accept_encoding = value.decode("latin-1")
        # Rendering runs in the default thread pool so that a large scrape does not stall the
        # loop.
        loop = asyncio.get_running_loop()
        body, headers = await loop.run_in_executor(
            None, render, scrape_source(self._registry), accept, accept_encoding
        )
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await _respond(send, 200, raw, b"" if method == "HEAD" else body)


def metrics_asgi_app(registry: Collector | None = None) -> MetricsASGIApp:
    """A pure ASGI app answering every GET/HEAD with the metrics exposition.

    Mount it (``app.mount("/metrics", obskit.metrics_asgi_app())``) or route it exactly
    (``app.add_route("/metrics", ...)``); rendering runs in the default thread pool so that a
    large scrape does not stall the loop.
    """
    return MetricsASGIApp(registry)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- standalone server --------------------------------------------------------------------------


class MetricsServer:
    """A /metrics HTTP server on its own daemon thread; :meth:`close` stops it."""

    def __init__(
        self,
        port: int,
        addr: str = "127.0.0.1",
        registry: Collector | None = None,
        *,
        reuse_port: bool = False,
    ):
        source = registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(send_body=True)

            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def _answer(self, send_body: bool) -> None:
                body, headers = render(
                    scrape_source(source),
                    self.headers.get("Accept"),
                    self.headers.get("Accept-Encoding"),
                )
                self.send_response(200)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes are not worth a log line each

        # An IPv6 address (or a name resolving only to one) needs an AF_INET6 socket.
        family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # A restarted process must be able to take its port back at once.
            allow_reuse_address = True
            address_family = family[0][0]

            def server_bind(self) -> None:
                # Workers of one server each listen on the same port and the kernel spreads
                # scrapes over them: every answer carries all workers' totals, and one worker's
                # death leaves the port served by the others. (socketserver's own switch for
                # this only exists from Python 3.11.)
                if reuse_port:
                    self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                super().server_bind()

        self._server = Server((addr, port), Handler)
        self.addr = addr
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="obskit-metrics-server",
            daemon=True,
        )
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def forget(self) -> None:
        """In a forked child: the serving thread is gone; close our copy of the socket."""
        self._server.server_close()


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: Collector | None = None
) -> MetricsServer:
    """Serve /metrics on ``addr:port`` (port 0 picks a free one: see ``.port``)."""
    return MetricsServer(port, addr, registry)
