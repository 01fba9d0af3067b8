"""One error_type: the same exception is named alike by every signal, as semconv says."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import obskit
import obskit.testing
from obskit import _semconv
from obskit._semconv import error_type, status_error_type
from shop import Declined


class Outer:
    class Inner(Exception):
        """A nested exception class."""


def _sdk_exception_type(exc: BaseException) -> str:
    """What the OpenTelemetry SDK writes as ``exception.type`` for ``exc``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.record_exception(exc)
    (finished,) = exporter.get_finished_spans()
    provider.shutdown()
    return str(finished.events[0].attributes["exception.type"])  # type: ignore[index]


class TestErrorType:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (Declined(), "shop.Declined"),
            (KeyError("k"), "KeyError"),
            (Outer.Inner(), f"{__name__}.Outer.Inner"),
            (httpx.ConnectError("refused"), "httpx.ConnectError"),
            (asyncio.CancelledError(), "asyncio.exceptions.CancelledError"),
        ],
    )
    def test_fully_qualified_class_name(self, exc: BaseException, expected: str) -> None:
        """The exception's module and qualified name; a builtin's bare name."""
        assert expected == error_type(exc)

    @pytest.mark.parametrize("exc", [Declined(), KeyError("k"), Outer.Inner()])
    def test_same_as_the_sdk_exception_type(self, exc: BaseException) -> None:
        """error_type is what the OpenTelemetry SDK records as exception.type."""
        assert _sdk_exception_type(exc) == error_type(exc)

    def test_main_module_keeps_its_name(self) -> None:
        """A class defined in __main__ is __main__.Name, as the SDK has it."""
        cls = type("Script", (Exception,), {"__module__": "__main__"})
        assert "__main__.Script" == error_type(cls())
        assert _sdk_exception_type(cls()) == error_type(cls())

    def test_cached_per_class_and_bounded(self) -> None:
        """A class is named once; classes made at run time cannot grow the cache without bound."""
        first = error_type(Declined())
        assert first is error_type(Declined("again"))
        made = [type(f"Made{i}", (Exception,), {}) for i in range(2 * _semconv._MAX_CACHED)]
        names = {error_type(cls()) for cls in made}
        assert 2 * _semconv._MAX_CACHED == len(names)
        assert len(_semconv._names) <= _semconv._MAX_CACHED


class TestStatusErrorType:
    @pytest.mark.parametrize(
        ("status", "client", "expected"),
        [
            (200, False, ""),
            (404, False, ""),
            (499, False, ""),
            (500, False, "500"),
            (503, False, "503"),
            (404, True, "404"),
            (429, True, "429"),
            (302, True, ""),
            (0, True, ""),
        ],
    )
    def test_failed_status_as_text(self, status: int, client: bool, expected: str) -> None:
        """A server failed from 500 on, a client from 400 on; the status code is the type."""
        assert expected == status_error_type(status, client=client)


# --- every signal names one exception alike ---------------------------------------------------


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise Declined("card refused")


@obskit.red(name="charge")
def _charge() -> None:
    raise Declined("card refused")


def _refusing(request: httpx.Request) -> httpx.Response:
    raise Declined("card refused")


def test_every_signal_names_the_exception_alike() -> None:
    """HTTP metric, access line, @red, spans and the outbound client all say shop.Declined."""
    expected = "shop.Declined"
    with obskit.testing.isolated() as cap, obskit.testing.capture_spans() as spans:

        async def serve() -> None:
            transport = httpx.ASGITransport(
                app=obskit.ASGIMiddleware(_asgi_app), raise_app_exceptions=False
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                assert 500 == (await client.get("/pay")).status_code

        asyncio.run(serve())
        with pytest.raises(Declined):
            _charge()
        with (
            httpx.Client(transport=httpx.MockTransport(_refusing)) as client,
            pytest.raises(Declined),
        ):
            client.get("http://bank.test/charge")
        obskit.testing.flush()
        labels = {
            "http_server_request_duration_seconds_count": cap.sample(
                "http_server_request_duration_seconds_count",
                {
                    "http_request_method": "GET",
                    "url_scheme": "http",
                    "http_route": "__unmatched__",
                    "http_response_status_code": "500",
                    "error_type": expected,
                    "tenant_id": "",
                },
            ),
            "obskit_function_calls_total": cap.sample(
                "obskit_function_calls_total",
                {
                    "function": "charge",
                    "module": __name__,
                    "result": "error",
                    "error_type": expected,
                },
            ),
            "http_client_request_duration_seconds_count": cap.sample(
                "http_client_request_duration_seconds_count",
                {
                    "server_address": "bank.test",
                    "http_request_method": "GET",
                    "http_response_status_code": "",
                    "error_type": expected,
                },
            ),
        }
        access = [line for line in cap.logs if line.get("logger") == "obskit.access"]
    assert dict.fromkeys(labels, 1.0) == labels
    assert [expected] == [line.get("error_type") for line in access]
    server = [s for s in spans if s.kind.name == "SERVER"]
    red = [s for s in spans if s.name == "charge"]
    # (The test's own call into the ASGI app is an outbound call too: a CLIENT span with a 500.)
    client = [s for s in spans if "bank.test" in str((s.attributes or {}).get("url.full"))]
    failed = [*server, *red, *client]
    assert 3 == len(failed)
    for span in failed:
        assert "ERROR" == span.status.status_code.name
        assert expected == (span.attributes or {}).get("error.type"), span.name
        events = [e for e in span.events if e.name == "exception"]
        assert [expected] == [(e.attributes or {}).get("exception.type") for e in events], span.name


# --- one method label -------------------------------------------------------------------------


async def _ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_method_semconv_does_not_name_is_other_on_every_signal() -> None:
    """A method semconv does not know is _OTHER on the metrics and the spans (server, client)."""
    method = "BREW"
    with (
        obskit.testing.isolated(baseline_ratio=1.0) as cap,
        obskit.testing.capture_spans() as spans,
    ):

        async def serve() -> None:
            transport = httpx.ASGITransport(app=obskit.ASGIMiddleware(_ok_app))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                assert 200 == (await client.request(method, "/pot")).status_code

        asyncio.run(serve())
        ok = httpx.MockTransport(lambda request: httpx.Response(200))
        with httpx.Client(transport=ok) as client:
            assert 200 == client.request(method, "http://bank.test/").status_code
        obskit.testing.flush()
        server_count = cap.sample(
            "http_server_request_duration_seconds_count",
            {
                "http_request_method": "_OTHER",
                "url_scheme": "http",
                "http_route": "__unmatched__",
                "http_response_status_code": "200",
                "error_type": "",
                "tenant_id": "",
            },
        )
        client_count = cap.sample(
            "http_client_request_duration_seconds_count",
            {
                "server_address": "bank.test",
                "http_request_method": "_OTHER",
                "http_response_status_code": "200",
                "error_type": "",
            },
        )
    assert (1.0, 1.0) == (server_count, client_count)
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    assert "_OTHER" == (server.attributes or {}).get("http.request.method")
    assert method == (server.attributes or {}).get("http.request.method_original")
    (bank,) = [s for s in spans if "bank.test" in str((s.attributes or {}).get("url.full"))]
    assert "_OTHER" == (bank.attributes or {}).get("http.request.method")
