"""obskit's own HTTP client and its Prometheus API client: every way a server can misbehave
ends as one clear error within the timeout, never an exception from deep inside or a hang."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from marker_support import dripping, hanging, refused
from obskit import _times
from obskit._prometheus import Prometheus, PrometheusError
from obskit._selfcalls import suppressed
from obskit._selfhttp import HttpError, base_url, get, request

Answerer = Callable[[BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def serving(answer: Answerer) -> Iterator[str]:
    """A loopback server whose every GET and POST is answered by ``answer``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answer(self)

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send(status: int, body: bytes | Any, content_type: str = "application/json") -> Answerer:
    """An answerer with a fixed status and body (JSON-encoded unless bytes)."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return answer


def drip_body(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then a body of a byte every 0.2 s: each read succeeds in time."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    with contextlib.suppress(OSError):
        for _ in range(1000):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.2)


def endless(handler: BaseHTTPRequestHandler) -> None:
    """A chunked answer without a declared length that never ends."""
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"x" * 65536
    with contextlib.suppress(OSError):
        for _ in range(10_000):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def get_with(url: str, headers: dict[str, str]) -> Any:
    """GET ``url`` with extra ``headers``."""
    return request("GET", url, headers=headers, timeout=5.0)


def _fails_within(call: Callable[[], Any], seconds: float) -> HttpError:
    began = time.monotonic()
    with pytest.raises(HttpError) as caught:
        call()
    assert time.monotonic() - began < seconds
    assert "\n" not in str(caught.value)
    return caught.value


class TestBounded:
    def test_a_server_that_never_answers_costs_the_timeout(self) -> None:
        """Connected but silent: 'no answer within 0.5 s' after about that long."""
        with hanging() as url:
            error = _fails_within(lambda: get(url, timeout=0.5), 3.0)
        assert "no answer within 0.5 s" in str(error)

    def test_headers_dripping_a_byte_at_a_time_are_bounded_as_a_whole(self) -> None:
        """Each byte arrives within the socket timeout; the call still ends at its deadline."""
        with dripping(interval=0.1) as url:
            error = _fails_within(lambda: get(url, timeout=1.0), 4.0)
        assert "no answer within 1 s" in str(error)

    def test_a_body_dripping_a_byte_at_a_time_is_bounded_as_a_whole(self) -> None:
        """A body cut short by the deadline is no answer, not a truncated one."""
        with serving(drip_body) as url:
            error = _fails_within(lambda: get(url, timeout=1.0), 4.0)
        assert "no answer within 1 s" in str(error)

    def test_refused_and_unresolvable_say_so(self) -> None:
        """Nothing listening, or a host that does not resolve: the reason in words."""
        error = _fails_within(lambda: get(refused(), timeout=2.0), 3.0)
        assert "Connection refused" in str(error)
        error = _fails_within(lambda: get("http://no-such-host.invalid/x", timeout=2.0), 5.0)
        assert "no-such-host.invalid/x" in str(error)


class TestCapped:
    def test_a_declared_length_over_the_cap_is_refused_unread(self) -> None:
        """Content-Length above max_bytes: refused before reading the body."""
        with serving(send(200, b"x" * 5000)) as url:
            error = _fails_within(lambda: get(url, timeout=5.0, max_bytes=1000), 5.0)
        assert "answer larger than 1000 bytes (5000 declared)" in str(error)

    def test_an_endless_chunked_answer_stops_at_the_cap(self) -> None:
        """No declared length: reading stops as soon as the cap is passed."""
        with serving(endless) as url:
            error = _fails_within(lambda: get(url, timeout=10.0, max_bytes=1_000_000), 10.0)
        assert "answer larger than 1000000 bytes" in str(error)


class TestErrors:
    def test_an_error_status_keeps_its_code_and_body_on_one_line(self) -> None:
        """HTTP 500 with a multi-line HTML body: one line, the status, the start of the body."""
        html = b"<html>\n<body>\n  broken\n</body>\n</html>" + b"x" * 1000
        with serving(send(500, html, "text/html")) as url:
            error = _fails_within(lambda: get(url + "/path?query=secret", timeout=5.0), 5.0)
        assert 500 == error.status
        assert html[:100] == error.body[:100]
        assert str(error).startswith(f"{url}/path: HTTP 500 <html> <body> broken")
        assert "secret" not in str(error)
        assert len(str(error)) < 400

    @pytest.mark.parametrize(
        "url", ["file:///etc/passwd", "ftp://example.com/x", "notaurl", "http://", "http://h:x/"]
    )
    def test_only_http_and_https_urls_are_called(self, url: str) -> None:
        """urllib would read file: and ftp: URLs; obskit's client refuses them."""
        with pytest.raises(HttpError) as caught:
            get(url, timeout=1.0)
        assert "not an http:// or https:// URL" in str(caught.value)
        with pytest.raises(ValueError, match="--prometheus must be an http"):
            base_url(url, "--prometheus")

    @pytest.mark.parametrize(
        ("target", "reason"),
        [
            ("file:///etc/passwd", "redirects to a file: URL"),
            ("ftp://127.0.0.1:9/x", "redirects to a ftp: URL"),
        ],
    )
    def test_a_redirect_to_another_scheme_is_not_followed(self, target: str, reason: str) -> None:
        """A 302 to file: or ftp: ends as an error, not a read of a local file or an FTP call."""

        def redirect(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(302)
            handler.send_header("Location", target)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with serving(redirect) as url:
            error = _fails_within(lambda: get(url, timeout=5.0), 5.0)
        assert reason in str(error)

    def test_a_redirect_to_another_server_does_not_carry_the_credentials(self) -> None:
        """Authorization and API-key headers stay with the origin they were given for."""
        seen: list[dict[str, str]] = []

        def record(handler: BaseHTTPRequestHandler) -> None:
            seen.append({k.lower(): v for k, v in handler.headers.items()})
            send(200, {})(handler)

        with serving(record) as other:

            def redirect(handler: BaseHTTPRequestHandler) -> None:
                seen.append({k.lower(): v for k, v in handler.headers.items()})
                handler.send_response(307)
                handler.send_header("Location", f"{other}/elsewhere")
                handler.send_header("Content-Length", "0")
                handler.end_headers()

            secrets = {"Authorization": "Bearer s3cret", "DD-API-KEY": "k3y"}
            with serving(redirect) as url:
                assert 200 == get_with(url, secrets).status
        assert "Bearer s3cret" == seen[0]["authorization"]
        assert "k3y" == seen[0]["dd-api-key"]
        assert "authorization" not in seen[1]
        assert "dd-api-key" not in seen[1]

    @pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan])
    def test_a_timeout_that_bounds_nothing_is_a_value_error(self, timeout: float) -> None:
        """Zero, negative, infinite or NaN timeouts are refused before any call."""
        with pytest.raises(ValueError, match="positive number of seconds"):
            request("GET", "http://127.0.0.1:9", timeout=timeout)

    def test_an_answer_that_is_not_json_says_where_from(self) -> None:
        """Non-UTF-8 bytes where JSON was expected: HttpError naming the URL."""
        with serving(send(200, b"\xff\xfe\x00garbage")) as url:
            answer = get(url, timeout=5.0)
            with pytest.raises(HttpError, match=f"{url}: not a JSON answer"):
                answer.json()
            with pytest.raises(HttpError, match="not UTF-8 text"):
                answer.text()


def test_calls_are_quiet_and_carry_no_propagation_header() -> None:
    """Inside the call instrumentation is suppressed; no traceparent reaches the server."""
    seen: list[dict[str, str]] = []
    states: list[bool] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        seen.append({k.lower(): v for k, v in handler.headers.items()})
        send(200, {})(handler)

    import obskit._selfhttp as selfhttp

    original = selfhttp._read

    def spy(*args: Any) -> bytes:
        states.append(suppressed())
        return original(*args)

    with serving(record) as url, pytest.MonkeyPatch.context() as patch:
        patch.setattr(selfhttp, "_read", spy)
        request("POST", url, body={"a": 1}, timeout=5.0)
    assert [True] == states
    assert "traceparent" not in seen[0]
    assert "application/json" == seen[0]["content-type"]


class TestPrometheusClient:
    def test_prometheus_refusing_a_query_is_an_answered_error(self) -> None:
        """A 400 with Prometheus' error object: its errorType and error, answered=True."""
        refusal = {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
        with serving(send(400, refusal)) as url, pytest.raises(PrometheusError) as caught:
            Prometheus(url, 5.0).query("up{", 0.0)
        assert caught.value.answered
        assert str(caught.value).endswith("/api/v1/query: bad_data: parse error at char 3")

    @pytest.mark.parametrize(
        "body",
        [
            [1, 2, 3],
            {"status": "success", "data": [1, 2]},
            {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": "x"}]}},
            {"status": "success", "data": {"resultType": "matrix", "result": [{"values": 1}]}},
            {"status": "success", "data": {"resultType": "matrix", "result": "x"}},
        ],
    )
    def test_an_answer_of_the_wrong_shape_is_an_error_not_a_crash(self, body: Any) -> None:
        """Whatever JSON comes back, a range query ends as a PrometheusError."""
        with serving(send(200, body)) as url, pytest.raises(PrometheusError):
            Prometheus(url, 5.0).range("up", 0.0, 60.0, 15.0)

    def test_nan_and_infinite_values_come_back_as_nan(self) -> None:
        """NaN and ±Inf samples are NaN ('no sample' for every caller), labels as strings."""
        values = [[0, "NaN"], [15, "+Inf"], [30, "-Inf"], [45, "3"]]
        result = [{"metric": {"job": "shop", "n": 1}, "values": values}]
        data = {"resultType": "matrix", "result": result}
        with serving(send(200, {"status": "success", "data": data})) as url:
            (series,) = Prometheus(url, 5.0).range("up", 0.0, 45.0, 15.0)
        assert {"job": "shop", "n": "1"} == dict(series.labels)
        assert [True, True, True, False] == [math.isnan(v) for _, v in series.points]

    def test_unreachable_is_not_an_answered_error(self) -> None:
        """Connection refused: answered=False (the next question would fail the same way), and
        the message names the Prometheus, the call tried and the reason."""
        url = refused()
        with pytest.raises(PrometheusError) as caught:
            Prometheus(url, 2.0).query("up", 0.0)
        assert not caught.value.answered
        expected = f"cannot ask Prometheus at {url}: GET /api/v1/query: Connection refused"
        assert expected == str(caught.value)

    def test_a_bad_base_url_or_timeout_is_refused_at_once(self) -> None:
        """The client checks its URL and timeout before any call."""
        with pytest.raises(PrometheusError, match="--prometheus must be an http"):
            Prometheus("prom:9090")
        with pytest.raises(PrometheusError, match="positive number of seconds"):
            Prometheus("http://prom:9090", math.inf)


class TestTimes:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30s", 30), ("5m", 300), ("1h30m", 5400), ("30d", 2_592_000), ("1y", 31_536_000)],
    )
    def test_whole_durations(self, text: str, seconds: int) -> None:
        """Prometheus' duration grammar, in whole seconds."""
        assert seconds == _times.parse_duration(text)

    @pytest.mark.parametrize("text", ["0s", "0d", "", "5", "1.5s", "250ms", "5 m", "m", "101y"])
    def test_not_whole_durations(self, text: str) -> None:
        """Zero, a bare number, a fraction, a space or over a hundred years: ValueError."""
        with pytest.raises(ValueError):
            _times.parse_duration(text)

    def test_seconds_take_fractions_and_bare_numbers(self) -> None:
        """The canary's durations: 90, 1.5m, 250ms; never zero, NaN or infinite."""
        assert [90.0, 90.0, 0.25, 5400.0] == [
            _times.parse_seconds(t) for t in ("90", "1.5m", "250ms", "1h30m")
        ]
        for bad in ("0", "nan", "inf", "-5s", math.inf, math.nan, 0.0):
            with pytest.raises(ValueError):
                _times.parse_seconds(bad)

    @pytest.mark.parametrize("text", ["-1e18", "1e300", "inf", "-inf", "nan", "now-520000w"])
    def test_times_outside_1970_to_9999_are_refused(self, text: str) -> None:
        """A time no report can write is a ValueError at parse time, not a crash later."""
        with pytest.raises(ValueError):
            _times.parse_time(text)

    def test_lower_case_z_and_dates(self) -> None:
        """ISO 8601 with a lower-case z, and a bare date (midnight UTC)."""
        assert 1_777_896_000 == _times.parse_time("2026-05-04T12:00:00z")
        assert 1_777_852_800 == _times.parse_time("2026-05-04")
