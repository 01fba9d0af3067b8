"""init() registers the configured USE collectors; their output passes the real promtool."""

from __future__ import annotations

import subprocess

from prometheus_client import generate_latest

import obskit.testing
from conftest import require_binary
from obskit.metrics.use.wiring import FACTORIES


def test_init_registers_every_collector() -> None:
    """With the default settings every USE collector reports itself up or explains why not."""
    with obskit.testing.isolated() as capture:
        for name in FACTORIES:
            up = capture.sample("obskit_collector_up", {"collector": name})
            assert up in (0.0, 1.0), name
        assert 1.0 == capture.sample("obskit_collector_up", {"collector": "process"})


def test_collectors_setting_selects() -> None:
    """Only the collectors named in the setting are registered."""
    with obskit.testing.isolated(collectors="cgroup") as capture:
        assert capture.sample("obskit_collector_up", {"collector": "process"}) is None
        assert capture.sample("obskit_collector_up", {"collector": "cgroup"}) is not None


def test_none_registers_nothing() -> None:
    """collectors=none leaves the registry without USE families."""
    with obskit.testing.isolated(collectors="none") as capture:
        assert capture.sample("obskit_collector_up", {"collector": "process"}) is None


def test_shutdown_unregisters() -> None:
    """After the block ends the registry no longer holds the USE collector."""
    with obskit.testing.isolated() as capture:
        registry = capture.registry
    assert registry.get_sample_value("obskit_collector_up", {"collector": "process"}) is None


def test_promtool_accepts_all_collectors() -> None:
    """The real `promtool check metrics` accepts the exposition with every collector on."""
    promtool = require_binary("promtool")
    with obskit.testing.isolated(collectors="all") as capture:
        text = generate_latest(capture.registry)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()
