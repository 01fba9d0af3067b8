"""One series, one family, one name: every exposition obskit can produce, parsed and checked."""

from __future__ import annotations

import collections
import queue
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import GC_COLLECTOR, PROCESS_COLLECTOR, REGISTRY

import obskit.testing
from conftest import require_binary
from metrics_support import OPENMETRICS, every_family_driven, parse, scrape

# prometheus-client's default process and GC families, which obskit's own replace.
DEFAULT_NAMES = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "python_gc_objects_collected_total",
    "python_gc_objects_uncollectable_total",
    "python_gc_collections_total",
)
MODES = {
    "private-registry": {},
    "default-registry": {"registry": REGISTRY},
    "multiprocess": {"multiprocess_dir": "{tmp}/mp"},
}


def _expositions(tmp_path: Path, mode: str) -> dict[str, str]:
    settings = {
        key: value.format(tmp=tmp_path) if isinstance(value, str) else value
        for key, value in MODES[mode].items()
    }
    with (
        obskit.testing.isolated(
            service_name="series", trace_sink=str(tmp_path / "spans.jsonl"), **settings
        ),
        every_family_driven(),
    ):
        obskit.testing.flush()
        return {"text": scrape(), "openmetrics": scrape(OPENMETRICS)}


def _duplicates(text: str, openmetrics: bool) -> list[str]:
    """Series (name and labels) and family names that appear more than once."""
    series = collections.Counter(s for family in parse(text, openmetrics) for s in family.series)
    problems = [
        f"series {name}{dict(labels)} x{n}" for (name, labels), n in series.items() if n > 1
    ]
    types = collections.Counter(re.findall(r"^# TYPE (\S+) ", text, re.M))
    problems += [f"family {name} x{n}" for name, n in types.items() if n > 1]
    return sorted(problems)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_duplicate_series(tmp_path: Path, mode: str) -> None:
    """Neither format of any mode repeats a series or a family (promtool misses the former)."""
    expositions = _expositions(tmp_path, mode)
    assert "obskit_use_tracked_dropped_total" in expositions["text"]
    for kind, text in expositions.items():
        assert [] == _duplicates(text, openmetrics=kind == "openmetrics"), f"{mode} {kind}"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_promtool_accepts_every_text_exposition(tmp_path: Path, mode: str) -> None:
    """`promtool check metrics` passes the text exposition of every mode, lint included."""
    promtool = require_binary("promtool")
    text = _expositions(tmp_path, mode)["text"]
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()


def test_tracked_dropped_counted_once_per_kind() -> None:
    """A queue name tracked again counts one replacement, reported by one source only."""
    name, labels = "obskit_use_tracked_dropped_total", {"kind": "queue", "reason": "replaced"}
    first: queue.Queue[int] = queue.Queue()
    second: queue.Queue[int] = queue.Queue()
    with obskit.testing.isolated(service_name="series", tracing=False) as env:
        obskit.track_queue(first, "series-replaced")
        before = env.sample(name, labels) or 0.0  # (the process-wide trackers outlive a test)
        obskit.track_queue(second, "series-replaced")
        assert 1.0 == (env.sample(name, labels) or 0.0) - before


@pytest.mark.parametrize("mode", ["default-registry", "multiprocess"])
def test_one_set_of_process_and_gc_families(tmp_path: Path, mode: str) -> None:
    """obskit's process and GC families replace prometheus-client's: no two say the same."""
    text = _expositions(tmp_path, mode)["text"]
    for name in DEFAULT_NAMES:
        assert not re.search(rf"^{name}\b", text, re.M), name
    for name in (
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
        "process_start_time_seconds",
        "cpython_gc_collections_total",
        "obskit_gc_pause_seconds_count",
    ):
        assert re.search(rf"^{name}\b", text, re.M), name


def test_default_collectors_given_back_at_shutdown() -> None:
    """After shutdown the default registry has prometheus-client's collectors again."""
    with obskit.testing.isolated(service_name="series", registry=REGISTRY, tracing=False):
        assert REGISTRY.get_sample_value("process_cpu_seconds_total") is None
        assert REGISTRY.get_sample_value("process_start_time_seconds") is not None
    assert REGISTRY.get_sample_value("process_cpu_seconds_total") is not None
    assert REGISTRY.get_sample_value("python_gc_collections_total", {"generation": "0"})
    # Registering them again proves they are back (and only once).
    for collector in (PROCESS_COLLECTOR, GC_COLLECTOR):
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            REGISTRY.register(collector)


def test_process_start_time_matches_prometheus_client() -> None:
    """obskit's process_start_time_seconds is the value prometheus-client's collector reports."""
    with obskit.testing.isolated(service_name="series", tracing=False) as env:
        ours = env.sample("process_start_time_seconds")
    theirs = next(
        m.samples[0].value
        for m in PROCESS_COLLECTOR.collect()
        if m.name.endswith("start_time_seconds")
    )
    assert ours is not None
    # Both add the start offset to /proc/stat's btime, a whole second that the kernel recomputes
    # (prometheus-client read it once at import): they may differ by that second, never more.
    assert abs(theirs - ours) <= 1.01
