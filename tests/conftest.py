"""Shared fixtures: strict guard, obskit state reset around every test, real-tool lookups."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import obskit.testing
from obskit import _guard

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _obskit_clean_state() -> Iterator[None]:
    """Every test starts and ends with obskit torn down; internal errors raise instead of hiding."""
    previous = _guard.set_strict(True)
    obskit.testing.reset()
    try:
        yield
    finally:
        obskit.testing.reset()
        _guard.set_strict(previous)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that must import this tree's obskit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def require_binary(name: str) -> str:
    """Path of a real tool; skip without it on a laptop, fail under CI where it must exist."""
    path = shutil.which(name)
    if path is None and os.path.exists(f"/usr/bin/{name}"):
        path = f"/usr/bin/{name}"
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI (scripts/setup installs it)")
        pytest.skip(f"{name} not installed")
    return path


PYTHON = sys.executable


# --- a real Prometheus scraping a live obskit service (see prometheus_support.py) ---------


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``obskit demo --serve`` after a short run, for the tests of one module."""
    from prometheus_support import serve_demo

    with serve_demo(tmp_path_factory.mktemp("demo-serve")) as services:
        yield services


@pytest.fixture(scope="module")
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start real Prometheus servers (``factory(targets, rule_files=...)``); all stopped after
    the module's tests."""
    from prometheus_support import start_prometheus

    with contextlib.ExitStack() as stack:

        def factory(targets: Any, **options: Any) -> Any:
            workdir = tmp_path_factory.mktemp("prometheus")
            return stack.enter_context(start_prometheus(workdir, targets, **options))

        yield factory
