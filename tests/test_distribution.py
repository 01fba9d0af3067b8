"""The distribution's name is ours, every install line uses it, and the README runs as pasted."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from conftest import subprocess_env
from obskit._identity import DISTRIBUTION, OBSKIT_VERSION

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the oldest Python reads the name with a regular expression
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
# Where a user reads an install command: the README, the docs, obskit's own messages.
TEXTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SOURCES = sorted((ROOT / "src" / "obskit").rglob("*.py"))
INSTALL = re.compile(r"pip install((?:\s+-{1,2}[\w-]+)*)\s+['\"]?([^\s'\"`]+)")


def _project_name() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return str(tomllib.loads(text)["project"]["name"])
    match = re.search(r'^name = "([^"]+)"', text, re.M)
    assert match is not None
    return match.group(1)


def test_the_distribution_is_not_the_squatted_name() -> None:
    """pyproject's name is DISTRIBUTION, not `obskit` (another project's on the index)."""
    assert DISTRIBUTION == _project_name()
    assert "obskit" != DISTRIBUTION
    # Installed under that name: the version obskit reports comes from its metadata.
    assert version(DISTRIBUTION) == OBSKIT_VERSION


def test_every_install_line_names_the_distribution() -> None:
    """Each `pip install` in the docs, the README and obskit's messages installs obskit-signals."""
    wrong = []
    for path in [*TEXTS, *SOURCES]:
        text = path.read_text()
        for match in INSTALL.finditer(text):
            name = match.group(2).split("[", 1)[0]
            if name in (DISTRIBUTION, "{DISTRIBUTION}", "%s", "-e", "."):
                continue
            if name.startswith("obskit") or "obskit" in match.group(0):
                wrong.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
        # An extra written under the old name (`obskit[otlp]`) is an install line too.
        wrong += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"\bobskit\[\w+", text)]
    assert [] == wrong


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert 1 == len(blocks), "the README has one Python snippet, the one this test runs"
    return blocks[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"uvicorn did not listen on {port} within {timeout} s")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_readme_snippet_runs_as_pasted_and_says_what_appears_where(tmp_path: Path) -> None:
    """The README's main.py, unchanged, under `uvicorn main:app`: logs, /metrics, trace file."""
    (tmp_path / "main.py").write_text(_readme_snippet())
    port = _free_port()
    out = tmp_path / "stdout.log"
    env = subprocess_env(TMPDIR=str(tmp_path))
    argv = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, 30)
        base = f"http://127.0.0.1:{port}"
        order = httpx.get(f"{base}/orders/7", timeout=10)
        scrape = httpx.get(f"{base}/metrics", timeout=10, follow_redirects=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert 200 == order.status_code
    assert {"order_id": 7} == order.json()
    assert 200 == scrape.status_code
    assert 'http_route="/orders/{order_id}"' in scrape.text
    lines = [json.loads(raw) for raw in out.read_text().splitlines() if raw.startswith("{")]
    read = [line for line in lines if line.get("event") == "order.read"]
    assert 1 == len(read)
    assert {"correlation_id", "trace_id", "span_id"} <= set(read[0])
    assert "checkout" == read[0]["service"]
    access = [line for line in lines if line.get("logger") == "obskit.access"]
    assert any(line.get("route") == "/orders/{order_id}" for line in access), access
    # The trace file the README names, announced at start.
    sink_path = str(tmp_path / "obskit-checkout-traces.jsonl")
    assert any(sink_path in str(line.get("event")) for line in lines), lines[:5]
