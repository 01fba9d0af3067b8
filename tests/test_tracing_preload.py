"""gunicorn --preload: workers forked from an initialised master boot and trace on their own."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import PYTHON, subprocess_env
from test_use_workers import free_port

APP = """
import obskit
obskit.init(service_name="preload", trace_sink={sink!r}, baseline_ratio=1.0, collectors="none")

def hello(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]

app = obskit.WSGIMiddleware(hello)
"""


@pytest.mark.slow
def test_preloaded_workers_boot_and_keep_their_own_identity(tmp_path: Path) -> None:
    """Both workers answer, and their kept spans carry two distinct service.instance.id values."""
    sink = tmp_path / "spans.jsonl"
    (tmp_path / "preload_app.py").write_text(textwrap.dedent(APP.format(sink=str(sink))))
    port = free_port()
    env = subprocess_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path), subprocess_env()["PYTHONPATH"]])
    )
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-w", "2", "--preload", "-b", f"127.0.0.1:{port}",
         "preload_app:app"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    instances: set[str] = set()
    answered = 0
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and len(instances) < 2:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    answered += response.read() == b"ok"
            except OSError:
                time.sleep(0.2)
                continue
            if sink.exists():
                # Only whole lines: the file is read while the workers append to it, so its last
                # line may be half written; a broken line before it would still fail the test.
                *complete, _partial = sink.read_text().split("\n")
                instances = {
                    json.loads(line)["service_instance"] for line in complete if line.strip()
                }
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(15)
        log.close()
    assert answered > 0, (tmp_path / "gunicorn.log").read_text()[-2000:]
    assert 2 == len(instances), (tmp_path / "gunicorn.log").read_text()[-2000:]
