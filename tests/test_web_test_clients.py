"""Applications tested the way their framework's users test them (issue 14 item 4).

Flask's test client reads a body and never calls ``close()``; a test that only checks the status
reads nothing. Each request must still be recorded exactly once, as what it was (never ``499``
for a client that simply did not read), with no trace left undecided after the tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, redirect

import obskit
import obskit.testing
from conftest import PYTHON, subprocess_env
from server_support import get_all, serve, settle

APPS = Path(__file__).resolve().parent / "web_apps"


def _access(capture: obskit.testing.Capture) -> list[tuple[str, int, str]]:
    return [
        (line["path"], line["status"], line["route"])
        for line in capture.logs
        if line.get("logger") == "obskit.access"
    ]


def _red(capture: obskit.testing.Capture) -> Counter[tuple[str, str, str]]:
    """Requests per (method, route, status) in RED's duration histogram."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for metric in capture.registry.collect():
        if metric.name != "http_server_request_duration_seconds":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                labels = sample.labels
                key = (
                    labels["http_request_method"],
                    labels["http_route"],
                    labels["http_response_status_code"],
                )
                counts[key] += int(sample.value)
    return counts


def _flask_app() -> Flask:
    app = Flask("shop")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id}

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            yield from ("0\n", "1\n", "2\n")

        return Response(chunks())

    @app.get("/old")
    def old() -> Any:
        return redirect("/items/9")

    @app.get("/boom")
    def boom() -> str:
        raise LookupError("no such item")

    app.wsgi_app = obskit.WSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def test_flask_test_client_requests_are_each_recorded_once() -> None:
    """Flask's test client, used as Flask users do (status only, ``.json``, ``.data``, a close
    without reading, a redirect followed, HEAD, 404, 500): every request has its RED series and
    one access line with its real status, and no trace is left undecided."""
    with obskit.testing.isolated() as capture:
        client = _flask_app().test_client()
        assert 200 == client.get("/items/1").status_code  # neither read nor closed
        assert {"item_id": 2} == client.get("/items/2").json  # read, never closed
        response = client.get("/items/3")
        response.close()  # closed without being read: the client did not go away
        with client.get("/stream") as streamed:  # a streamed body closed unread
            assert 200 == streamed.status_code
        assert b"0\n1\n2\n" == client.get("/stream").data  # a streamed body, read to its end
        assert 200 == client.head("/items/4").status_code
        assert 200 == client.get("/old", follow_redirects=True).status_code
        assert 404 == client.get("/nope").status_code
        assert 500 == client.get("/boom").status_code
        with client:  # the context-preserving form
            assert 200 == client.get("/items/5").status_code
        access = _access(capture)
        red = _red(capture)
        undecided = capture.sample("obskit_tail_buffered_traces")
    item = "/items/<int:item_id>"
    assert [
        ("/items/1", 200, item),
        ("/items/2", 200, item),
        ("/items/3", 200, item),
        ("/stream", 200, "/stream"),
        ("/stream", 200, "/stream"),
        ("/items/4", 200, item),
        ("/old", 302, "/old"),
        ("/items/9", 200, item),
        ("/nope", 404, "__unmatched__"),
        ("/boom", 500, "/boom"),
        ("/items/5", 200, item),
    ] == access
    assert {
        ("GET", item, "200"): 5,
        ("HEAD", item, "200"): 1,
        ("GET", "/stream", "200"): 2,
        ("GET", "/old", "302"): 1,
        ("GET", "__unmatched__", "404"): 1,
        ("GET", "/boom", "500"): 1,
    } == red
    assert 0 == undecided


def test_wsgi_body_finished_exactly_once_whichever_comes_first() -> None:
    """Exhausted, then closed: one record, timed at the end of the body, with its bytes."""
    with obskit.testing.isolated() as capture:
        middleware = obskit.WSGIMiddleware(_flask_app().wsgi_app)
        environ = _environ("/stream")
        body = middleware(environ, lambda status, headers, exc_info=None: lambda data: None)
        assert [b"0\n", b"1\n", b"2\n"] == list(body)
        assert 1 == len(_access(capture))  # recorded when exhausted, before any close()
        body.close()  # type: ignore[attr-defined]
        body.close()  # type: ignore[attr-defined]
        [line] = [x for x in capture.logs if x.get("logger") == "obskit.access"]
    assert (200, 6) == (line["status"], line["bytes"])


def test_wsgi_client_gone_mid_body_is_499_and_unread_is_not() -> None:
    """A body closed while a write failed (as servers close it: in a ``finally`` while the
    error propagates) records 499; closed part-read or unread with no such error, as a test
    client closes a response it did not read, it keeps its status."""
    with obskit.testing.isolated() as capture:
        middleware = obskit.WSGIMiddleware(_flask_app().wsgi_app)

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            return lambda data: None

        partly = middleware(_environ("/stream"), start)
        next(iter(partly))
        partly.close()  # type: ignore[attr-defined]
        unread = middleware(_environ("/stream"), start)
        unread.close()  # type: ignore[attr-defined]
        failing = middleware(_environ("/stream"), start)
        try:
            raise BrokenPipeError("client went away")
        except BrokenPipeError:
            failing.close()  # type: ignore[attr-defined]  # as gunicorn does, in a finally
        statuses = [status for _, status, _ in _access(capture)]
    assert [200, 200, 499] == statuses


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
    }


def test_django_test_client_requests_are_each_recorded_once() -> None:
    """A Django project's own tests with ``django.test.Client`` and ``AsyncClient`` (which call
    Django's handler, not wsgi.py): ``obskit.DjangoMiddleware`` records each request once."""
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), env["PYTHONPATH"]])
    result = subprocess.run(
        [PYTHON, str(APPS / "django_client_suite.py")],
        cwd=APPS,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == result.returncode, result.stderr[-4000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("SUMMARY ")]
    summary = json.loads(line.removeprefix("SUMMARY "))
    update = "/<int:id>/update"
    assert [
        ["/5/update", 200, update, ""],
        ["/articles/2024/", 200, "/articles/<int:year>/", ""],
        ["/nope", 404, "__unmatched__", ""],
        ["/stream/", 200, "/stream/", ""],
        ["/5/update", 200, update, ""],
        ["/boom/", 500, "/boom/", "LookupError"],
        ["/6/update", 200, update, ""],
    ] == summary["access"]
    assert sorted(
        [
            ["GET", update, "200", 2.0],
            ["HEAD", update, "200", 1.0],
            ["GET", "/articles/<int:year>/", "200", 1.0],
            ["GET", "__unmatched__", "404", 1.0],
            ["GET", "/stream/", "200", 1.0],
            ["GET", "/boom/", "500", 1.0],
        ]
    ) == sorted(summary["red"])
    assert 0 == summary["undecided"]


def _test_client_abandons_unread_streams() -> bool:
    """Whether Starlette's TestClient, leaving a streamed response unread, stops the app."""
    from starlette.testclient import TestClient

    finished = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        finished.append(True)

    with TestClient(app, raise_server_exceptions=False).stream("GET", "/"):
        pass
    return not finished


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_starlette_test_client_requests_are_each_recorded_once() -> None:
    """Starlette's ``TestClient`` (with and without its lifespan block), a streamed response
    read in full and one abandoned unread (that client did go away: 499)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"item_id": request.path_params["item_id"]})

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            for n in range(3):
                yield f"{n}\n"

        return StreamingResponse(chunks())

    async def boom(request: Request) -> JSONResponse:
        raise LookupError("no such item")

    routes = [Route("/items/{item_id}", item), Route("/stream", stream), Route("/boom", boom)]
    with obskit.testing.isolated() as capture:
        app = obskit.ASGIMiddleware(Starlette(routes=routes))
        with TestClient(app, raise_server_exceptions=False) as client:
            assert 200 == client.get("/items/1").status_code
            assert {"item_id": "2"} == client.get("/items/2").json()
            assert "0\n1\n2\n" == client.get("/stream").text
            with client.stream("GET", "/stream") as response:
                pass  # left without reading
            assert 404 == client.get("/nope").status_code
            assert 500 == client.get("/boom").status_code
        assert 200 == TestClient(app).get("/items/3").status_code
        access = _access(capture)
        red = _red(capture)
        undecided = capture.sample("obskit_tail_buffered_traces")
    assert 200 == response.status_code
    item_route = "/items/{item_id}"
    # An unread stream is abandoned only where the TestClient streams responses (Starlette's
    # newer releases); an older one runs the app to its end first: then that request completed.
    abandoned = 499 if _test_client_abandons_unread_streams() else 200
    assert [
        ("/items/1", 200, item_route),
        ("/items/2", 200, item_route),
        ("/stream", 200, "/stream"),
        ("/stream", abandoned, "/stream"),
        ("/nope", 404, "__unmatched__"),
        ("/boom", 500, "/boom"),
        ("/items/3", 200, item_route),
    ] == access
    expected_red = Counter(
        {
            ("GET", item_route, "200"): 3,
            ("GET", "__unmatched__", "404"): 1,
            ("GET", "/boom", "500"): 1,
        }
    )
    expected_red.update([("GET", "/stream", "200"), ("GET", "/stream", str(abandoned))])
    assert expected_red == Counter(red)
    assert 0 == undecided


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_client_leaving_mid_body_is_499(tmp_path: Path, worker: str) -> None:
    """Under gunicorn, a client that reads the first bytes of a streamed body and hangs up is
    recorded as 499; complete requests on the same server keep their status."""
    with serve("gunicorn", "flask_app:app", tmp_path, "-k", worker) as service:
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /slow-stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert [200, 200] == get_all(service, ["/items/1", "/7/update"])
        settle(service, 3)
        statuses = {line["path"]: line["status"] for line in service.access()}
    assert {"/slow-stream": 499, "/items/1": 200, "/7/update": 200} == statuses
