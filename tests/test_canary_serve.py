"""``obskit canary serve`` keeps the contracts of Argo Rollouts' web provider and Flagger's hooks.

A stand-in Prometheus on loopback answers range queries with series chosen per arm, so each
test knows the verdict it must see; the payloads are the ones Argo and Flagger send.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from obskit.canary.serve import CanaryServer, Defaults

# Flagger's webhook payload (flagger/pkg/controller/webhook.go: CanaryWebhookPayload).
FLAGGER_PAYLOAD = {
    "name": "podinfo",
    "namespace": "test",
    "phase": "Progressing",
    "checksum": "85c6f2b8c6",
    "metadata": {
        "baseline": '{namespace="{namespace}",app="{name}-primary"}',
        "canary": '{namespace="{namespace}",app="{name}"}',
        "since": "10m",
    },
}


class _FakePrometheus(BaseHTTPRequestHandler):
    """Answers ``query_range`` like Prometheus: the canary arm (``app="podinfo"``) errs or not."""

    canary_errors = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        query = params["query"][0]
        start, end, step = (float(params[k][0]) for k in ("start", "end", "step"))
        times = [start + i * step for i in range(int((end - start) / step) + 1)]
        canary = 'app="podinfo"' in query or 'hash="bbb"' in query
        result: list[dict[str, Any]] = []
        if 'app="none"' in query:  # an arm without any traffic
            pass
        elif "http_server_request_duration_seconds_bucket" in query:
            for le in ("0.1", "+Inf"):  # every request under 100 ms in both arms
                values = [[t, str(1000.0 * i)] for i, t in enumerate(times)]
                labels = {"job": "p", "instance": "x", "le": le}
                result.append({"metric": labels, "values": values})
        if "_count" in query and 'app="none"' not in query:
            errors = 'error_type!=""' in query
            per_step = (self.canary_errors if canary else 0.0) if errors else 1000.0
            if per_step:
                values = [[t, str(per_step * i)] for i, t in enumerate(times)]
                result.append({"metric": {"job": "p", "instance": "x"}, "values": values})
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
        payload = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def prometheus() -> Iterator[type[_FakePrometheus]]:
    """A stand-in Prometheus; set ``canary_errors`` per step on the yielded class."""
    handler = type("Handler", (_FakePrometheus,), {"canary_errors": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def serve(prometheus: Any) -> Iterator[tuple[CanaryServer, Any]]:
    """``obskit canary serve`` on a free port against the stand-in Prometheus."""
    server = CanaryServer(Defaults(prometheus=prometheus.url, since="10m"), 0).start()
    try:
        yield server, prometheus
    finally:
        server.close()


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        finally:
            exc.close()


def _argo_url(server: CanaryServer, **params: str) -> str:
    return f"{server.url}/v1/judge?" + urllib.parse.urlencode(params)


class TestArgoRolloutsWebProvider:
    def test_pass_and_fail_are_both_200_with_the_verdict_in_the_body(self, serve: Any) -> None:
        """Argo reads the verdict through jsonPath: PASS and FAIL are both 200 (non-2xx = Error)."""
        server, prometheus = serve
        url = _argo_url(server, baseline_hash="aaa", canary_hash="bbb", since="5m")
        status, body = _call(url)
        assert 200 == status
        assert "PASS" == body["verdict"]
        prometheus.canary_errors = 50.0
        status, body = _call(url)
        assert 200 == status
        assert "FAIL" == body["verdict"]
        assert {"metric", "segment", "decision", "reason"} <= set(body["checks"][0])

    def test_pod_template_hashes_become_matchers(self, serve: Any) -> None:
        """Argo's podTemplateHashValue Stable/Latest select the arms by the hash label."""
        server, _ = serve
        status, body = _call(_argo_url(server, baseline_hash="aaa", canary_hash="bbb"))
        assert 200 == status
        assert 'rollouts_pod_template_hash="aaa"' == body["baseline"]
        assert 'rollouts_pod_template_hash="bbb"' == body["canary"]

    def test_post_with_a_json_body_is_judged_too(self, serve: Any) -> None:
        """The web provider's POST with jsonBody carries the same parameters."""
        server, _ = serve
        status, body = _call(
            f"{server.url}/v1/judge", {"baseline_hash": "aaa", "canary_hash": "bbb"}
        )
        assert 200 == status
        assert "PASS" == body["verdict"]

    def test_bad_request_is_400_and_unreachable_prometheus_is_502(self, serve: Any) -> None:
        """A selector missing is 400, a Prometheus that cannot be read is 502: Argo errors."""
        server, _ = serve
        status, body = _call(_argo_url(server, canary_hash="bbb"))
        assert 400 == status
        assert "baseline" in body["error"]
        gone = CanaryServer(Defaults(prometheus="http://127.0.0.1:9", since="5m"), 0).start()
        try:
            status, body = _call(_argo_url(gone, baseline_hash="a", canary_hash="b"))
        finally:
            gone.close()
        assert 502 == status


class TestFlaggerWebhooks:
    def test_rollout_hook_is_success_on_pass_and_a_failed_check_on_fail(self, serve: Any) -> None:
        """rollout: 200 (<= 202, success) on PASS; 412 (a failed check) on FAIL."""
        server, prometheus = serve
        status, body = _call(f"{server.url}/flagger/rollout", FLAGGER_PAYLOAD)
        assert 200 == status
        assert "PASS" == body["verdict"]
        assert 'namespace="test"' in body["baseline"]
        assert 'app="podinfo-primary"' in body["baseline"]
        prometheus.canary_errors = 50.0
        status, body = _call(f"{server.url}/flagger/rollout", FLAGGER_PAYLOAD)
        assert 412 == status
        assert "FAIL" == body["verdict"]

    def test_confirm_promotion_waits_unless_pass(self, serve: Any) -> None:
        """confirm-promotion: 200 only on PASS, else 423 (Flagger keeps waiting)."""
        server, prometheus = serve
        assert 200 == _call(f"{server.url}/flagger/confirm-promotion", FLAGGER_PAYLOAD)[0]
        prometheus.canary_errors = 50.0
        assert 423 == _call(f"{server.url}/flagger/confirm-promotion", FLAGGER_PAYLOAD)[0]

    def test_rollback_hook_is_2xx_only_when_the_canary_failed(self, serve: Any) -> None:
        """rollback: a 2xx means roll back now, so only FAIL answers 200."""
        server, prometheus = serve
        assert 412 == _call(f"{server.url}/flagger/rollback", FLAGGER_PAYLOAD)[0]
        prometheus.canary_errors = 50.0
        assert 200 == _call(f"{server.url}/flagger/rollback", FLAGGER_PAYLOAD)[0]

    def test_no_traffic_does_not_fail_a_rollout_check(self, serve: Any) -> None:
        """An INCONCLUSIVE verdict (no canary traffic yet) is success for the rollout hook."""
        server, _ = serve
        payload = {
            **FLAGGER_PAYLOAD,
            "metadata": {**FLAGGER_PAYLOAD["metadata"], "canary": '{app="none"}'},
        }  # type: ignore[dict-item]
        status, body = _call(f"{server.url}/flagger/rollout", payload)
        assert "INCONCLUSIVE" == body["verdict"]
        assert 200 == status
        assert 423 == _call(f"{server.url}/flagger/confirm-promotion", payload)[0]

    def test_malformed_payload_is_400(self, serve: Any) -> None:
        """A body that is not a JSON object is refused with 400."""
        server, _ = serve
        request = urllib.request.Request(f"{server.url}/flagger/rollout", data=b"[1, 2]")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        caught.value.close()
        assert 400 == caught.value.code
