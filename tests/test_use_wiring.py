"""init() registers the configured USE collectors; their output passes the real promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from prometheus_client import generate_latest

import obskit
import obskit.testing
from conftest import require_binary
from obskit._config import COLLECTORS
from obskit.metrics.use.wiring import FACTORIES


def test_init_registers_every_collector() -> None:
    """With the default settings every USE collector reports itself up or explains why not."""
    with obskit.testing.isolated() as capture:
        for name in COLLECTORS:
            up = capture.sample("obskit_collector_up", {"collector": name})
            assert up in (0.0, 1.0), name
        assert 1.0 == capture.sample("obskit_collector_up", {"collector": "process"})


def test_every_setting_name_has_a_collector() -> None:
    """Each name the collectors setting accepts builds a source."""
    assert set(COLLECTORS) == set(FACTORIES)


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


def test_promtool_accepts_all_collectors(tmp_path: Path) -> None:
    """The real `promtool check metrics` accepts the exposition with every collector populated."""
    import asyncio
    import gc
    import queue

    import sqlalchemy

    promtool = require_binary("promtool")
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=2)
    jobs: queue.Queue[int] = queue.Queue(maxsize=5)

    async def main(capture: obskit.testing.Capture) -> bytes:
        from obskit.metrics.use.event_loop import ensure_monitor

        ensure_monitor()
        await asyncio.get_running_loop().run_in_executor(None, gc.collect)
        await asyncio.sleep(0.06)
        await asyncio.get_running_loop().run_in_executor(None, gc.collect)
        return generate_latest(capture.registry)

    with obskit.testing.isolated(collectors="all") as capture:
        obskit.instrument_sqlalchemy(engine, name="orders")
        obskit.track_queue(jobs, "jobs")
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        text = asyncio.run(main(capture))
    engine.dispose()
    for family in (
        "process_threads",
        "obskit_event_loop_lag_seconds_bucket",
        "obskit_gc_pause_seconds_bucket",
        "obskit_executor_busy_workers",
        "db_client_connection_wait_time_seconds_bucket",
        "obskit_queue_depth",
    ):
        assert f"\n{family}{{".encode() in text or f"\n{family} ".encode() in text, family
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()


def test_documented_promql_parses(tmp_path: Path) -> None:
    """Every PromQL expression in docs/use.md is valid for the real `promtool check rules`."""
    promtool = require_binary("promtool")
    text = (Path(__file__).resolve().parents[1] / "docs" / "use.md").read_text()
    expressions: list[str] = []
    for block in re.findall(r"```promql\n(.*?)```", text, flags=re.S):
        current: list[str] = []
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line.startswith(" ") and current:
                current.append(line.strip())
                continue
            if current:
                expressions.append(" ".join(current))
            current = [line.strip()]
        if current:
            expressions.append(" ".join(current))
    assert len(expressions) >= 20
    rules = {
        "groups": [
            {
                "name": "use",
                "rules": [{"record": f"use:doc:{i}", "expr": e} for i, e in enumerate(expressions)],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()


def test_one_status_family_per_registry() -> None:
    """Sources attached and objects tracked on one registry share one status family."""
    import concurrent.futures
    import queue

    from prometheus_client import CollectorRegistry

    from obskit.metrics.use.collector import attach
    from obskit.metrics.use.process import ProcessCollector

    promtool = require_binary("promtool")
    registry = CollectorRegistry()
    attach(registry, [ProcessCollector()])
    jobs: queue.Queue[int] = queue.Queue()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        obskit.track_executor(executor, "work", registry=registry)
        obskit.track_queue(jobs, "jobs", registry=registry)
        text = generate_latest(registry)
    assert 1 == text.count(b"# TYPE obskit_collector_up gauge")
    for name in ("process", "executors", "pools"):
        assert f'obskit_collector_up{{collector="{name}"}} 1.0'.encode() in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()
