"""`obskit doctor module:app` imports the app as uvicorn does and checks what it wired."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.slow

APP = """\
import obskit
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hi")


obskit.init(service_name="doctored", metrics_port=0)
print("the application's own output")
app = obskit.ASGIMiddleware(Starlette(routes=[Route("/hello", hello)]))
bare = Starlette()


def create_app():
    return obskit.ASGIMiddleware(Starlette())
"""


def _doctor(tmp_path: Path, *args: str, **env: str) -> tuple[int, dict[str, Any], str]:
    """Run ``obskit doctor`` in ``tmp_path`` (where the app module is) like a user would."""
    code = "import sys\nfrom obskit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    result = subprocess.run(
        [sys.executable, "-c", code, "doctor", *args],
        cwd=tmp_path,
        env=subprocess_env(TMPDIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=90,
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding the application module ``svc.py``, as a user's project would."""
    (tmp_path / "svc.py").write_text(APP)
    return tmp_path


@pytest.fixture
def collector() -> Any:
    """A listening TCP socket standing in for an OTLP receiver; yields (port, socket)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(10)
        yield sock.getsockname()[1], sock


@pytest.mark.timeout(120)
def test_doctor_imports_the_app_and_reports_its_configuration(
    app_dir: Path, collector: Any
) -> None:
    """The report shows the app's own settings, its middleware, a live metrics server and a
    trace endpoint that accepts a connection; the endpoint receives no byte."""
    port, sock = collector
    rc, report, stderr = _doctor(
        app_dir, "svc:app", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}"
    )
    assert 0 == rc, stderr
    assert [] == report["problems"]
    assert "doctored" == report["settings"]["service_name"]
    assert "kwarg" == report["sources"]["service_name"]
    assert "obskit.web.asgi.ASGIMiddleware" == report["app"]["obskit_middleware"]
    server = report["checks"]["metrics_server"]
    assert 200 == server["answer"]
    assert server["url"] == report["wired"]["metrics_server"]
    assert server["families"] > 0
    trace = report["checks"]["trace_endpoint"]
    assert "accepts connections" == trace["tcp"]
    assert f"127.0.0.1:{port}" == trace["address"]
    assert "the application's own output" in stderr
    connection, _ = sock.accept()
    with connection:
        connection.settimeout(10)
        assert b"" == connection.recv(1024)  # opened and closed: nothing was sent


@pytest.mark.timeout(120)
def test_doctor_reports_a_closed_trace_endpoint_with_exit_1(app_dir: Path) -> None:
    """An endpoint nobody listens on is a problem: exit status 1 and a sentence saying so."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    rc, report, _ = _doctor(
        app_dir, "svc:app", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed}"
    )
    assert 1 == rc
    assert "refused" == report["checks"]["trace_endpoint"]["tcp"]
    assert [f"the trace endpoint 127.0.0.1:{closed}: refused"] == report["problems"]


@pytest.mark.timeout(120)
def test_doctor_never_prints_the_endpoint_password(app_dir: Path, collector: Any) -> None:
    """A password in the OTLP endpoint's URL is redacted everywhere in the report, and the
    check still reaches the endpoint's host and port."""
    port, _ = collector
    endpoint = f"http://deploy:hunter2-s3cret@127.0.0.1:{port}"
    rc, report, stderr = _doctor(app_dir, "svc:app", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    assert 0 == rc, stderr
    assert "hunter2-s3cret" not in json.dumps(report)
    assert "hunter2-s3cret" not in stderr
    assert "deploy:" in report["settings"]["otlp_endpoint"]
    assert f"127.0.0.1:{port}" == report["checks"]["trace_endpoint"]["address"]
    assert "accepts connections" == report["checks"]["trace_endpoint"]["tcp"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", ["svc:create_app", "svc:create_app()"])
def test_doctor_calls_a_factory(app_dir: Path, target: str) -> None:
    """A factory (detected, or spelled with gunicorn's parentheses) is called for the app."""
    rc, report, stderr = _doctor(app_dir, target)
    assert 0 == rc, stderr
    assert "obskit.web.asgi.ASGIMiddleware" == report["app"]["obskit_middleware"]


@pytest.mark.timeout(120)
def test_doctor_says_when_the_app_is_not_wrapped(app_dir: Path) -> None:
    """An app without obskit's middleware is reported as a problem."""
    rc, report, _ = _doctor(app_dir, "svc:bare")
    assert 1 == rc
    assert report["app"]["obskit_middleware"] is None
    assert any("is not wrapped by obskit.ASGIMiddleware" in p for p in report["problems"])


@pytest.mark.timeout(120)
def test_doctor_without_init_in_the_app(tmp_path: Path) -> None:
    """An app that never calls init() is reported, not mistaken for a configured one."""
    (tmp_path / "plain.py").write_text("def app(environ, start_response):\n    return [b'']\n")
    rc, report, _ = _doctor(tmp_path, "plain:app")
    assert 1 == rc
    assert report["initialized"] is False
    assert "never called obskit.init()" in report["problems"][0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuch:app", "no module named 'nosuch'"),
        ("svc:nope", "module 'svc' has no attribute 'nope'"),
        ("svc", "not of the form MODULE:ATTR"),
    ],
)
def test_doctor_cannot_import(app_dir: Path, target: str, message: str) -> None:
    """A target that does not import is exit status 2 with the reason, and no report."""
    rc, report, stderr = _doctor(app_dir, target)
    assert 2 == rc
    assert {} == report
    assert message in stderr


@pytest.mark.timeout(120)
def test_doctor_names_a_bad_setting_of_the_app(app_dir: Path) -> None:
    """The app's init() failing on a bad environment value is exit status 2 naming it."""
    rc, _, stderr = _doctor(app_dir, "svc:app", OBSKIT_TENANT_HEADER="x tenant")
    assert 2 == rc
    assert "'tenant_header'" in stderr
