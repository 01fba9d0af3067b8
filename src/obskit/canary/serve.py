"""``obskit canary serve``: the judge behind the HTTP contracts of Argo Rollouts and Flagger.

Argo Rollouts' ``web`` metric provider treats any status outside 2xx as an *error* of the
measurement, not a failure, and reads the JSON body through ``jsonPath``; so ``/v1/judge``
answers **200 with the report** for every verdict (``successCondition: result.verdict ==
"PASS"``, ``failureCondition: result.verdict == "FAIL"``: anything else is Inconclusive), 400
for a bad request and 502 when Prometheus cannot be read — both of which Argo reports as errors.

Flagger calls its webhooks with ``POST {"name", "namespace", "phase", "checksum", "metadata"}``
and counts a status **≤ 202** as success (203-299 count as failures, as does anything else):

==============================  ==============  ===========================================
endpoint                        2xx (200) when  otherwise
==============================  ==============  ===========================================
``/flagger/rollout``            PASS or         412: a failed check (INCONCLUSIVE waits for
                                INCONCLUSIVE    data instead of failing an early interval)
``/flagger/confirm-promotion``  PASS            423: Flagger keeps waiting
``/flagger/rollback``           FAIL            412: no rollback (2xx means "roll back now")
==============================  ==============  ===========================================

Arms come from the request (``baseline``/``canary`` selectors, or Argo's pod-template hashes as
``baseline_hash``/``canary_hash``; for Flagger from the webhook's ``metadata``) or from the
server's defaults; ``{name}`` and ``{namespace}`` in a selector are replaced by Flagger's
canary name and namespace (which must be Kubernetes names: nothing can be injected into a
selector through them).

The server is a control-plane endpoint, built not to fall over: a request must arrive whole
(headers and body, with a ``Content-Length`` of at most 64 KiB) within
:data:`REQUEST_SECONDS`, else its connection is closed; at most :data:`MAX_CONNECTIONS`
connections are served at once (more get 503); a malformed request gets a JSON 400 and its
connection is closed (its unread bytes are never taken for the next request).
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from obskit import _locks
from obskit._selfhttp import base_url
from obskit.canary.api import judge, parse_duration
from obskit.canary.report import Report
from obskit.canary.sources import SourceError
from obskit.metrics.promql import Matcher, by_clause, parse_matchers

__all__ = ["FLAGGER_HOOKS", "MAX_CONNECTIONS", "REQUEST_SECONDS", "CanaryServer", "Defaults"]

HASH_LABEL = "rollouts_pod_template_hash"
MAX_BODY = 64 * 1024
#: Seconds a client has to send a whole request (and a socket operation may take at most).
REQUEST_SECONDS = 10.0
#: Connections served at once; the next ones are answered 503 and closed.
MAX_CONNECTIONS = 32
# A Kubernetes object name (RFC 1123 subdomain): what Flagger sends as name and namespace.
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# Flagger hook -> (verdicts answered 200, status otherwise).
FLAGGER_HOOKS: dict[str, tuple[frozenset[str], int]] = {
    "rollout": (frozenset(("PASS", "INCONCLUSIVE")), 412),
    "confirm-promotion": (frozenset(("PASS",)), 423),
    "rollback": (frozenset(("FAIL",)), 412),
}


class BadRequest(ValueError):
    """The request cannot be judged as asked (answered 400, or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _text(value: Any) -> str:
    """A parameter from a JSON body: a string, or a number or flag (not a list or an object)."""
    if isinstance(value, (dict, list)):
        raise BadRequest(f"a parameter is a string, not {json.dumps(value)[:80]}")
    return value if isinstance(value, str) else json.dumps(value)


def _k8s_name(value: Any, what: str) -> str:
    text = "" if value is None else str(value)
    if text and not _K8S_NAME.fullmatch(text):
        raise BadRequest(f"{what} is a Kubernetes name (a-z, 0-9, '-', '.'), not {text[:80]!r}")
    return text


@dataclass(frozen=True)
class Defaults:
    """What the server judges when a request does not say."""

    prometheus: str
    baseline: str = ""
    canary: str = ""
    since: str = "10m"
    timeout: float = 8.0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base_url(self.prometheus, "--prometheus")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"--timeout is a positive number of seconds, not {self.timeout!r}")
        parse_duration(self.since)
        by_clause(self.options.get("by", ()))
        for template in (self.baseline, self.canary):
            if template:
                parse_matchers(template.replace("{name}", "x").replace("{namespace}", "x"))


def _arm(
    params: dict[str, str], name: str, default: str, names: dict[str, str]
) -> tuple[Matcher, ...]:
    selector = params.get(name) or default
    matchers: tuple[Matcher, ...] = ()
    if selector:
        for key, value in names.items():
            selector = selector.replace("{" + key + "}", value)
        matchers = parse_matchers(selector)
    pod_hash = params.get(f"{name}_hash")
    if pod_hash:
        label = params.get("hash_label") or HASH_LABEL
        matchers = (*matchers, Matcher(label, "=", pod_hash))
    if not matchers:
        raise BadRequest(
            f"no {name} selector: pass {name}= or {name}_hash=, or start the server with --{name}"
        )
    return matchers


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limit`` of them; :meth:`drain` waits for them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, limit: int) -> None:
        super().__init__(address, handler)
        self._limit = limit
        self._active = 0
        self._idle = _locks.condition()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle:
            admitted = self._active < self._limit
            if admitted:
                self._active += 1
        if not admitted:
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def drain(self, seconds: float) -> int:
        """Wait up to ``seconds`` for the connections being served; how many are left."""
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=seconds)
            return self._active


def _refuse(connection: socket.socket) -> None:
    body = json.dumps({"error": "busy: too many connections, try again"}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        connection.settimeout(1.0)
        connection.sendall(head.encode() + body)
    except OSError:
        pass  # the client went away: nothing to tell


class CanaryServer:
    """A threaded HTTP server answering Argo Rollouts and Flagger with the judge's report.

    ``request_seconds``: how long a client has to send one whole request (and how long a
    connection may idle between requests); ``max_connections``: served at once.
    """

    def __init__(
        self,
        defaults: Defaults,
        port: int = 0,
        addr: str = "127.0.0.1",
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_seconds: float = REQUEST_SECONDS,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"--port is from 0 to 65535, not {port}")
        if max_connections < 1:
            raise ValueError(f"max_connections is at least 1, not {max_connections}")
        if not (math.isfinite(request_seconds) and request_seconds > 0):
            raise ValueError(f"request_seconds is positive, not {request_seconds!r}")
        self.defaults = defaults
        attributes = {"server_defaults": defaults, "timeout": request_seconds}
        handler = type("Handler", (_Handler,), attributes)
        self._server = _BoundedServer((addr, port), handler, max_connections)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{addr}:{self.port}"
        self._thread: threading.Thread | None = None
        self._stopping = _locks.event()

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` or :meth:`close`."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> CanaryServer:
        """Serve on a background thread (tests, embedding)."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="obskit-canary", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Make :meth:`serve_forever` return; safe from a signal handler (it does not wait)."""
        if not self._stopping.is_set():
            self._stopping.set()
            # shutdown() waits for the serving loop: from the serving thread's own signal
            # handler that would never return, so another thread asks.
            threading.Thread(
                target=self._server.shutdown, name="obskit-canary-stop", daemon=True
            ).start()

    def close(self, grace: float = REQUEST_SECONDS) -> int:
        """Stop accepting, let the requests being answered finish (up to ``grace`` seconds),
        release the port; how many connections were still open at the end."""
        if self._thread is not None:
            self.stop()
            self._thread.join(timeout=5)
        self._server.server_close()
        return self._server.drain(grace)


class _Handler(BaseHTTPRequestHandler):
    server_defaults: Defaults
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_SECONDS  # each read and write; and the whole request
    error_content_type = "application/json"
    error_message_format = '{"error": "%(code)d %(message)s"}'

    def log_message(self, format: str, *args: Any) -> None:
        return  # the answer carries everything; no access log on stderr

    def handle_one_request(self) -> None:
        # The whole request must arrive in time, not each byte: a client that sends one byte
        # every few seconds would otherwise hold its thread for hours.
        self._arrived = _locks.event()
        timer = threading.Timer(self.timeout or REQUEST_SECONDS, self._too_slow)
        timer.daemon = True
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def _too_slow(self) -> None:
        if not self._arrived.is_set():
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def do_GET(self) -> None:
        self._arrived.set()
        path, _, query = self.path.partition("?")
        if path == "/healthz":
            self._send(200, {"ok": True})
        elif path == "/v1/judge":
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
            self._judge(params, None)
        else:
            self._send(404, {"error": f"no endpoint {path}"})

    def do_POST(self) -> None:
        path = self.path.partition("?")[0]
        try:
            body = self._body()
        except BadRequest as exc:
            self.close_connection = True  # what is left unread is not the next request
            self._send(exc.status, {"error": str(exc)})
            return
        finally:
            self._arrived.set()
        if path == "/v1/judge":
            try:
                params = {k: _text(v) for k, v in body.items()}
            except BadRequest as exc:
                self._send(400, {"error": str(exc)})
                return
            self._judge(params, None)
        elif path.startswith("/flagger/") and path[len("/flagger/") :] in FLAGGER_HOOKS:
            self._flagger(path[len("/flagger/") :], body)
        else:
            self._send(404, {"error": f"no endpoint {path}"})

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("send the body with a Content-Length, not chunked", 411)
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():
            raise BadRequest(f"Content-Length is a number of bytes, not {declared!r}")
        length = int(declared)
        if length > MAX_BODY:
            raise BadRequest(f"request body over {MAX_BODY} bytes", 413)
        try:
            raw = self.rfile.read(length) if length else b"{}"
        except OSError:
            raise BadRequest("the body did not arrive in time") from None
        if len(raw) < length:
            raise BadRequest("the body did not arrive in time")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _flagger(self, hook: str, body: dict[str, Any]) -> None:
        metadata = body.get("metadata")
        if metadata is None:
            metadata = {}
        try:
            if not isinstance(metadata, dict):
                raise BadRequest("metadata must be an object of strings")
            names = {
                "name": _k8s_name(body.get("name"), "name"),
                "namespace": _k8s_name(body.get("namespace"), "namespace"),
            }
            params = {k: _text(v) for k, v in metadata.items()}
        except BadRequest as exc:
            self._send(400, {"error": str(exc)})
            return
        report = self._judge(params, names, respond=False)
        if report is None:
            return
        passing, otherwise = FLAGGER_HOOKS[hook]
        status = 200 if report.verdict in passing else otherwise
        self._send(status, {"hook": hook, "phase": body.get("phase"), **report.as_json()})

    def _judge(
        self, params: dict[str, str], names: dict[str, str] | None, *, respond: bool = True
    ) -> Report | None:
        defaults = self.server_defaults
        try:
            names = names or {}
            baseline = _arm(params, "baseline", defaults.baseline, names)
            canary = _arm(params, "canary", defaults.canary, names)
            options = dict(defaults.options)
            if params.get("by"):
                options["by"] = [label.strip() for label in params["by"].split(",") if label]
            report = judge(
                defaults.prometheus,
                baseline,
                canary,
                params.get("since") or defaults.since,
                step=params.get("step") or None,
                timeout=defaults.timeout,
                **options,
            )
        except (BadRequest, ValueError) as exc:
            self._send(400, {"error": str(exc)})
            return None
        except SourceError as exc:
            self._send(502, {"error": str(exc)})
            return None
        except Exception as exc:  # a bug of the judge's: an answer all the same, not a hang-up
            self._send(500, {"error": f"internal error: {type(exc).__name__}: {exc}"[:500]})
            return None
        if respond:
            self._send(200, report.as_json())
        return report

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the base class finds (a bad request line, a header too long) as JSON, and the
        connection closed."""
        self.close_connection = True
        short = self.responses.get(code, ("error", ""))[0]
        self._send(code, {"error": f"{code} {message or short}"})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client went away, or stopped reading
