"""`import obskit` alone has no side effects: no handler, thread, metric or environment read."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import subprocess_env

_PROBE = r"""
import json, logging, os, sys, threading

class SpyEnviron(type(os.environ)):
    reads = []
    def __getitem__(self, key):
        SpyEnviron.reads.append(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        SpyEnviron.reads.append(key)
        return super().__contains__(key)
    def get(self, key, default=None):
        SpyEnviron.reads.append(key)
        return super().get(key, default)

spy = SpyEnviron(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                 os.environ.encodevalue, os.environ.decodevalue)
os.environ = spy
before_modules = set(sys.modules)
threads_before = threading.active_count()
handlers_before = list(logging.getLogger().handlers)

import obskit
names = list(obskit.__all__)

print(json.dumps({
    "env_reads": SpyEnviron.reads,
    "threads_added": threading.active_count() - threads_before,
    "handlers_changed": logging.getLogger().handlers != handlers_before,
    "heavy_imported": sorted(m for m in set(sys.modules) - before_modules
                             if m.split(".")[0] in {"prometheus_client", "structlog",
                                                    "opentelemetry"}),
    "names": names,
}))
"""


def test_import_has_no_side_effects() -> None:
    """Importing obskit reads no environment, starts no thread, adds no handler or metric."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    assert [] == result["env_reads"]
    assert 0 == result["threads_added"]
    assert not result["handlers_changed"]
    # Nothing that could register a metric or configure logging was even imported.
    assert [] == result["heavy_imported"]
    assert sorted(result["names"]) == result["names"]


def test_every_public_name_resolves() -> None:
    """Each name in obskit.__all__ can be imported (the lazy facade has no dangling entry)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import obskit; [getattr(obskit, n) for n in obskit.__all__]; print('ok')",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ok" == out.stdout.strip(), out.stderr


def test_auto_import_initialises_from_environment() -> None:
    """`import obskit.auto` wires obskit from the environment and fails clearly on a bad value."""
    code = "import obskit.auto, obskit; print(obskit.doctor()['settings']['service_name'])"
    ok = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(OTEL_SERVICE_NAME="from-env", OBSKIT_LOG_STREAM="stderr"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "from-env" == ok.stdout.strip(), ok.stderr
    bad = subprocess.run(
        [sys.executable, "-c", "import obskit.auto"],
        env=subprocess_env(OBSKIT_SLOW_THRESHOLD_MS="fast"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 != bad.returncode
    assert "OBSKIT_SLOW_THRESHOLD_MS" in bad.stderr
    assert "'fast'" in bad.stderr


def test_public_names_have_one_source() -> None:
    """obskit's public names are its lazy table's keys: ``__all__`` is derived from it, and the
    type checkers' imports in ``__init__.py`` re-export exactly those names from the same homes."""
    import ast
    from pathlib import Path

    import obskit

    source = Path(obskit.__file__).read_text()
    (block,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    imported = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    explicit = [
        alias.name
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname != alias.name
    ]
    assert obskit._HOMES == imported
    assert [] == explicit  # `name as name`: strict type checkers see an explicit re-export
    assert sorted(obskit._HOMES) == obskit.__all__
