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
canary name and namespace.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from obskit.canary.api import judge, parse_duration
from obskit.canary.report import Report
from obskit.canary.sources import SourceError
from obskit.metrics.promql import Matcher, parse_matchers

__all__ = ["FLAGGER_HOOKS", "CanaryServer", "Defaults"]

HASH_LABEL = "rollouts_pod_template_hash"
MAX_BODY = 64 * 1024
# Flagger hook -> (verdicts answered 200, status otherwise).
FLAGGER_HOOKS: dict[str, tuple[frozenset[str], int]] = {
    "rollout": (frozenset(("PASS", "INCONCLUSIVE")), 412),
    "confirm-promotion": (frozenset(("PASS",)), 423),
    "rollback": (frozenset(("FAIL",)), 412),
}


class BadRequest(ValueError):
    """The request cannot be judged as asked (answered 400)."""


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
        parse_duration(self.since)
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


class CanaryServer:
    """A threaded HTTP server answering Argo Rollouts and Flagger with the judge's report."""

    def __init__(self, defaults: Defaults, port: int = 0, addr: str = "127.0.0.1") -> None:
        self.defaults = defaults
        handler = type("Handler", (_Handler,), {"server_defaults": defaults})
        self._server = ThreadingHTTPServer((addr, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{addr}:{self.port}"
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close`."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> CanaryServer:
        """Serve on a background thread (tests, embedding)."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="obskit-canary", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_defaults: Defaults
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # the answer carries everything; no access log on stderr

    def do_GET(self) -> None:
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
            self._send(400, {"error": str(exc)})
            return
        if path == "/v1/judge":
            self._judge({k: str(v) for k, v in body.items()}, None)
        elif path.startswith("/flagger/") and path[len("/flagger/") :] in FLAGGER_HOOKS:
            self._flagger(path[len("/flagger/") :], body)
        else:
            self._send(404, {"error": f"no endpoint {path}"})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _flagger(self, hook: str, body: dict[str, Any]) -> None:
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            self._send(400, {"error": "metadata must be an object of strings"})
            return
        names = {"name": str(body.get("name", "")), "namespace": str(body.get("namespace", ""))}
        params = {k: str(v) for k, v in metadata.items()}
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
        if respond:
            self._send(200, report.as_json())
        return report

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
