"""The guides' code works as written: /metrics under Flask and Django, the instrumentator migration.

Each snippet marked ``<!-- guide-test: NAME -->`` in ``docs/guides`` runs unchanged under a real
server; the migration guide's PromQL pairs run against a real Prometheus scraping one service
instrumented both ways, and give the same numbers.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import subprocess_env

pytestmark = pytest.mark.slow
GUIDES = Path(__file__).resolve().parents[1] / "docs" / "guides"
COUNT = "http_server_request_duration_seconds_count"


def snippet(guide: str, name: str) -> str:
    """The Python block marked ``<!-- guide-test: name -->`` in ``docs/guides/<guide>.md``."""
    text = (GUIDES / f"{guide}.md").read_text()
    match = re.search(rf"<!-- guide-test: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert match is not None, f"{guide}.md has no snippet {name}"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(argv: list[str], cwd: Path, port: int, **env: str) -> Iterator[str]:
    """Run a server in ``cwd`` until the block ends; yields its base URL once it listens."""
    child_env = subprocess_env(TMPDIR=str(cwd), **env)
    child_env["PYTHONPATH"] = os.pathsep.join([str(cwd), child_env["PYTHONPATH"]])
    with (cwd / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv], cwd=cwd, env=child_env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 40
        while True:
            if proc.poll() is not None:
                raise AssertionError((cwd / "server.log").read_text()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no server on {port}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _counts(exposition: str) -> dict[str, float]:
    """Requests by route in an exposition (every worker's, as one scrape reports them)."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == COUNT:
                route = sample.labels["http_route"]
                counts[route] = counts.get(route, 0.0) + sample.value
    return counts


def _gunicorn(target: str, port: int) -> list[str]:
    return ["gunicorn", target, "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"]


@pytest.mark.timeout(150)
def test_flask_guide_serves_metrics_beside_the_app(tmp_path: Path) -> None:
    """The Flask guide's app under gunicorn -w 2: /metrics answers without a redirect, counts
    every worker's requests, and scrapes are no requests."""
    (tmp_path / "billing.py").write_text(snippet("flask", "flask-metrics"))
    port = _free_port()
    with serve(_gunicorn("billing:app", port), tmp_path, port) as base:
        for n in range(10):
            assert 200 == httpx.get(f"{base}/invoices/{n}", timeout=10).status_code
        scrapes = [httpx.get(f"{base}/metrics", timeout=10) for _ in range(3)]
        openmetrics = httpx.get(
            f"{base}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
        )
    assert [200, 200, 200] == [scrape.status_code for scrape in scrapes]
    for scrape in scrapes:
        assert {"/invoices/<int:invoice_id>": 10.0} == _counts(scrape.text)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")


@pytest.mark.timeout(150)
def test_django_guide_serves_metrics_from_a_view(tmp_path: Path) -> None:
    """The Django guide's urls.py and wsgi.py under gunicorn -w 2: the view serves every worker's
    counts, HEAD and 405 behave, and the default exclusion keeps scrapes out."""
    (tmp_path / "settings.py").write_text(
        "SECRET_KEY = 'guide-test'\nDEBUG = False\nALLOWED_HOSTS = ['*']\n"
        "ROOT_URLCONF = 'urls'\nINSTALLED_APPS = []\nUSE_TZ = True\n"
    )
    (tmp_path / "urls.py").write_text(snippet("django", "django-urls"))
    (tmp_path / "wsgi.py").write_text(snippet("django", "django-wsgi"))
    port = _free_port()
    argv = _gunicorn("wsgi:application", port)
    with serve(argv, tmp_path, port, DJANGO_SETTINGS_MODULE="settings") as base:
        for year in range(2020, 2025):
            response = httpx.get(f"{base}/articles/{year}/", timeout=10)
            assert 200 == response.status_code
            assert {"year": year} == response.json()
        scrapes = [httpx.get(f"{base}/metrics", timeout=10) for _ in range(3)]
        head = httpx.head(f"{base}/metrics", timeout=10)
        post = httpx.post(f"{base}/metrics", timeout=10)
    assert [200, 200, 200] == [scrape.status_code for scrape in scrapes]
    for scrape in scrapes:
        assert {"/articles/<int:year>/": 5.0} == _counts(scrape.text)
    assert (200, b"") == (head.status_code, head.content)
    assert 405 == post.status_code


# --- the migration guide's PromQL, against a real Prometheus -----------------------------------

_PAIR = re.compile(r"^\| ([^|`]+?) \| `([^`]+)` \| `([^`]+)` \|$")
OLD_LABELS = {"handler": "http_route", "method": "http_request_method", "status": "status"}
OLD_VALUES = {("http_route", "none"): "__unmatched__"}


def promql_pairs() -> list[tuple[str, str, str]]:
    """The (panel, instrumentator query, obskit query) rows of the migration guide's table."""
    text = (GUIDES / "migrate-instrumentator.md").read_text()
    table = text.split("<!-- promql-pairs", 1)[1].split("\n\n", 1)[0]
    pairs = [m.groups() for line in table.splitlines() if (m := _PAIR.match(line))]
    assert len(pairs) >= 6, table
    return [(panel.strip(), old, new) for panel, old, new in pairs]


def _vector(result: list[dict[str, Any]], rename: bool) -> dict[tuple[tuple[str, str], ...], float]:
    vector = {}
    for series in result:
        labels = {}
        for name, value in series["metric"].items():
            if rename:
                name = OLD_LABELS.get(name, name)
                value = OLD_VALUES.get((name, value), value)
            labels[name] = value
        vector[tuple(sorted(labels.items()))] = float(series["value"][1])
    return vector


SERVE = """\
from fastapi.responses import JSONResponse

from guideapp import api, app


@api.get("/fail")
async def fail() -> JSONResponse:
    return JSONResponse({"error": "failed"}, status_code=500)


__all__ = ["app"]
"""


@pytest.mark.prometheus
@pytest.mark.timeout(180)
def test_migration_guide_promql_pairs_agree(tmp_path: Path, prometheus_factory: Any) -> None:
    """Each PromQL pair of the migration guide gives the same numbers on one service that the
    guide's snippet instruments both ways (a quantile: the same series, obskit's no higher)."""
    from prometheus_support import Target

    (tmp_path / "guideapp.py").write_text(
        snippet("migrate-instrumentator", "instrumentator-migration")
    )
    (tmp_path / "serve.py").write_text(SERVE)
    port = _free_port()
    argv = ["uvicorn", "serve:app", "--host", "127.0.0.1", "--port", str(port)]
    with serve(argv, tmp_path, port) as base, httpx.Client(base_url=base, timeout=10) as client:
        paths = ["/items/1", "/fail", "/nowhere"]
        for path in paths:  # every series exists before the first scrape
            client.get(path)
        prometheus = prometheus_factory([Target.from_url("svc", f"{base}/metrics")])
        for n in range(36):
            client.get(paths[0] if n % 6 else paths[1 + (n // 6) % 2])
            time.sleep(0.05)
        prometheus.scraped_after("svc", time.time() + 0.5)
        at = time.time()
        pairs = promql_pairs()
        for panel, old_query, new_query in pairs:
            old = _vector(prometheus.query(old_query, at), rename=True)
            new = _vector(prometheus.query(new_query, at), rename=False)
            assert old, f"{panel}: {old_query} returned nothing"
            assert old.keys() == new.keys(), panel
            for key, value in old.items():
                if "histogram_quantile" in new_query:
                    assert math.isfinite(new[key]), (panel, key)
                    assert new[key] <= value, (panel, key)
                else:
                    assert value == pytest.approx(new[key], rel=1e-9), (panel, key)
