"""The cgroup and process collectors against fixture cgroup trees and a fixture /proc."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from obskit.metrics.use.cgroup import CgroupCollector, CgroupReader
from obskit.metrics.use.collector import UseCollector
from obskit.metrics.use.process import ProcessCollector
from use_trees import V1_CGROUP, V2_CGROUP, proc_tree, v1_tree, v2_tree, write


def registry_for(*sources: object) -> CollectorRegistry:
    """A fresh registry with one UseCollector over ``sources``."""
    registry = CollectorRegistry()
    registry.register(UseCollector(list(sources)))  # type: ignore[arg-type]
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """One sample's value."""
    return registry.get_sample_value(name, labels)


@pytest.fixture
def v2_limited(tmp_path: Path) -> tuple[str, str]:
    """(cgroup root, proc) of a limited cgroup v2 container."""
    return str(v2_tree(tmp_path / "cg")), str(proc_tree(tmp_path / "proc", V2_CGROUP))


class TestCgroupV2:
    def test_limited_values(self, v2_limited: tuple[str, str]) -> None:
        """Every v2 value is parsed exactly; limits are the smallest along the ancestors."""
        root, proc = v2_limited
        registry = registry_for(CgroupCollector(root=root, proc=proc))
        assert 1.0 == value(registry, "obskit_collector_up", collector="cgroup")
        assert 1.0 == value(registry, "obskit_cgroup_info", version="2")
        assert 1.5 == value(registry, "obskit_cgroup_cpu_limit_cores")
        assert 7.5 == value(registry, "obskit_cgroup_cpu_usage_seconds_total")
        assert 120 == value(registry, "obskit_cgroup_cpu_periods_total")
        assert 30 == value(registry, "obskit_cgroup_cpu_throttled_periods_total")
        assert 4.5 == value(registry, "obskit_cgroup_cpu_throttled_seconds_total")
        assert 104857600 == value(registry, "obskit_cgroup_memory_usage_bytes")
        assert 100000000 == value(registry, "obskit_cgroup_memory_working_set_bytes")
        assert 209715200 == value(registry, "obskit_cgroup_memory_limit_bytes")
        assert 100000000 / 209715200 == value(registry, "obskit_cgroup_memory_utilization_ratio")
        assert 9 == value(registry, "obskit_cgroup_memory_limit_hits_total")
        assert 1 == value(registry, "obskit_cgroup_memory_oom_kills_total")
        pressure = "obskit_pressure_stalled_seconds_total"
        assert 2.0 == value(registry, pressure, resource="cpu", stall="some", scope="cgroup")
        assert 1.0 == value(registry, pressure, resource="cpu", stall="full", scope="cgroup")
        assert 42e-6 == value(registry, pressure, resource="io", stall="some", scope="cgroup")

    def test_unlimited_leaves_limits_out(self, tmp_path: Path) -> None:
        """Without limits the limit and utilization series are absent, the counters present."""
        root = str(v2_tree(tmp_path / "cg", limited=False))
        proc = str(proc_tree(tmp_path / "proc", V2_CGROUP))
        registry = registry_for(CgroupCollector(root=root, proc=proc))
        assert value(registry, "obskit_cgroup_cpu_limit_cores") is None
        assert value(registry, "obskit_cgroup_memory_limit_bytes") is None
        assert value(registry, "obskit_cgroup_memory_utilization_ratio") is None
        assert 7.5 == value(registry, "obskit_cgroup_cpu_usage_seconds_total")

    def test_missing_keys_and_files(self, tmp_path: Path) -> None:
        """A cpu.stat without throttling keys and no memory.events still yields the rest."""
        root = v2_tree(tmp_path / "cg")
        app = root / "kubepods/pod1/app"
        (app / "cpu.stat").write_text("usage_usec 1000000\nnr_periods oops\n")
        (app / "memory.events").unlink()
        proc = str(proc_tree(tmp_path / "proc", V2_CGROUP))
        registry = registry_for(CgroupCollector(root=str(root), proc=proc))
        assert 1.0 == value(registry, "obskit_cgroup_cpu_usage_seconds_total")
        assert value(registry, "obskit_cgroup_cpu_periods_total") is None
        assert value(registry, "obskit_cgroup_cpu_throttled_seconds_total") is None
        assert value(registry, "obskit_cgroup_memory_oom_kills_total") is None
        assert 1.0 == value(registry, "obskit_collector_up", collector="cgroup")

    def test_namespaced_path_falls_back_to_mount(self, tmp_path: Path) -> None:
        """A cgroup path that does not exist under the root (cgroup namespace) reads the root."""
        root = write(tmp_path / "cg", {"cgroup.controllers": "", "memory.max": "1000\n"})
        proc = str(proc_tree(tmp_path / "proc", "0::/elsewhere\n"))
        assert (None, 1000) == CgroupReader(root=str(root), proc=proc).limits()


class TestCgroupV1:
    def test_values(self, tmp_path: Path) -> None:
        """Every v1 value is parsed exactly; the root's 'unlimited' sentinel is not a limit."""
        root = str(v1_tree(tmp_path / "cg"))
        proc = str(proc_tree(tmp_path / "proc", V1_CGROUP))
        registry = registry_for(CgroupCollector(root=root, proc=proc))
        assert 1.0 == value(registry, "obskit_cgroup_info", version="1")
        assert 0.5 == value(registry, "obskit_cgroup_cpu_limit_cores")
        assert 3.0 == value(registry, "obskit_cgroup_cpu_usage_seconds_total")
        assert 10 == value(registry, "obskit_cgroup_cpu_periods_total")
        assert 4 == value(registry, "obskit_cgroup_cpu_throttled_periods_total")
        assert 2.0 == value(registry, "obskit_cgroup_cpu_throttled_seconds_total")
        assert 52428800 == value(registry, "obskit_cgroup_memory_usage_bytes")
        assert 50000000 == value(registry, "obskit_cgroup_memory_working_set_bytes")
        assert 104857600 == value(registry, "obskit_cgroup_memory_limit_bytes")
        assert 3 == value(registry, "obskit_cgroup_memory_limit_hits_total")
        assert 2 == value(registry, "obskit_cgroup_memory_oom_kills_total")

    def test_psi_falls_back_to_system(self, tmp_path: Path) -> None:
        """Without a per-cgroup PSI file, system-wide pressure from /proc is read and labelled."""
        root = str(v1_tree(tmp_path / "cg"))
        proc = str(proc_tree(tmp_path / "proc", V1_CGROUP))
        registry = registry_for(CgroupCollector(root=root, proc=proc))
        pressure = "obskit_pressure_stalled_seconds_total"
        assert 1.5 == value(registry, pressure, resource="cpu", stall="some", scope="system")
        assert 0.25 == value(registry, pressure, resource="memory", stall="some", scope="system")

    def test_hybrid_reads_psi_from_the_unified_hierarchy(self, tmp_path: Path) -> None:
        """On a hybrid host, PSI comes from the cgroup's directory in the v2 hierarchy."""
        root = v1_tree(tmp_path / "cg")
        write(
            root,
            {
                "unified/cgroup.procs": "",
                "unified/docker/abc/cpu.pressure": "some avg10=0 avg60=0 avg300=0 total=7000000\n",
            },
        )
        proc = str(proc_tree(tmp_path / "proc", V1_CGROUP))
        registry = registry_for(CgroupCollector(root=str(root), proc=proc))
        pressure = "obskit_pressure_stalled_seconds_total"
        assert 7.0 == value(registry, pressure, resource="cpu", stall="some", scope="cgroup")
        assert 1.0 == value(registry, "obskit_cgroup_info", version="1")

    def test_no_psi_is_explained(self, tmp_path: Path) -> None:
        """A kernel without PSI is noted as a reason while the collector stays up."""
        root = str(v1_tree(tmp_path / "cg"))
        proc = str(proc_tree(tmp_path / "proc", V1_CGROUP, psi=False))
        registry = registry_for(CgroupCollector(root=root, proc=proc))
        assert 1.0 == value(registry, "obskit_collector_up", collector="cgroup")
        info = "obskit_collector_unavailable_info"
        assert 1.0 == value(registry, info, collector="cgroup", reason="psi_not_offered")


class TestNoCgroup:
    def test_down_with_reason(self, tmp_path: Path) -> None:
        """Without /proc/self/cgroup the collector is down with reason no_cgroup, not silent."""
        proc = tmp_path / "proc"
        proc.mkdir()
        registry = registry_for(CgroupCollector(root=str(tmp_path / "cg"), proc=str(proc)))
        assert 0.0 == value(registry, "obskit_collector_up", collector="cgroup")
        info = "obskit_collector_unavailable_info"
        assert 1.0 == value(registry, info, collector="cgroup", reason="no_cgroup")

    def test_no_filesystem(self, tmp_path: Path) -> None:
        """A /proc/self/cgroup without a mounted cgroup filesystem also reads as no_cgroup."""
        proc = str(proc_tree(tmp_path / "proc", V2_CGROUP))
        registry = registry_for(CgroupCollector(root=str(tmp_path / "missing"), proc=proc))
        assert 0.0 == value(registry, "obskit_collector_up", collector="cgroup")


class TestProcess:
    def test_values_against_cgroup_limits(self, v2_limited: tuple[str, str]) -> None:
        """CPU time, RSS, threads, fds and limits are parsed; utilization uses the cgroup quota."""
        root, proc = v2_limited
        registry = registry_for(ProcessCollector(proc=proc, root=root))
        assert 2.5 == value(registry, "process_cpu_time_seconds_total", cpu_mode="user")
        assert 0.5 == value(registry, "process_cpu_time_seconds_total", cpu_mode="system")
        assert 1.5 == value(registry, "obskit_process_cpu_available_cores")
        assert 2048 * 1024 == value(registry, "process_memory_usage_bytes")
        assert 123456789 == value(registry, "process_memory_virtual_bytes")
        assert 209715200 == value(registry, "obskit_process_memory_limit_bytes")
        assert 2048 * 1024 / 209715200 == value(registry, "process_memory_utilization_ratio")
        assert 7 == value(registry, "process_threads")
        assert 3 == value(registry, "process_unix_file_descriptors")
        assert 1024 == value(registry, "obskit_process_unix_file_descriptors_limit")
        switches = "process_context_switches_total"
        assert 11 == value(registry, switches, process_context_switch_type="voluntary")
        assert 5 == value(registry, switches, process_context_switch_type="involuntary")

    def test_without_cgroup_uses_cores_and_machine_memory(self, tmp_path: Path) -> None:
        """With no cgroup, CPU is relative to the cores and memory to MemTotal."""
        proc = str(proc_tree(tmp_path / "proc", ""))
        collector = ProcessCollector(proc=proc, root=str(tmp_path / "none"), cores=lambda: 4)
        registry = registry_for(collector)
        assert 4 == value(registry, "obskit_process_cpu_available_cores")
        assert 8192 * 1024 == value(registry, "obskit_process_memory_limit_bytes")

    def test_missing_status_keys(self, tmp_path: Path) -> None:
        """A status file without Threads or VmRSS leaves those series out and the rest in."""
        proc = proc_tree(tmp_path / "proc", V2_CGROUP)
        (proc / "self" / "status").write_text("Name:\tpython\n")
        registry = registry_for(ProcessCollector(proc=str(proc), root=str(tmp_path / "none")))
        assert value(registry, "process_threads") is None
        assert value(registry, "process_memory_usage_bytes") is None
        assert 2.5 == value(registry, "process_cpu_time_seconds_total", cpu_mode="user")

    def test_unreadable_stat_falls_back_and_says_so(self, tmp_path: Path) -> None:
        """Without /proc/self/stat, CPU time comes from os.times() and the gap is noted."""
        proc = proc_tree(tmp_path / "proc", V2_CGROUP)
        (proc / "self" / "stat").unlink()
        registry = registry_for(ProcessCollector(proc=str(proc), root=str(tmp_path / "none")))
        assert value(registry, "process_cpu_time_seconds_total", cpu_mode="user") is not None
        info = "obskit_collector_unavailable_info"
        assert 1.0 == value(registry, info, collector="process", reason="stat_unreadable")

    def test_utilization_since_previous_scrape(self, tmp_path: Path) -> None:
        """Utilization is the CPU time between two scrapes over elapsed time and cores."""
        proc = proc_tree(tmp_path / "proc", V2_CGROUP)
        collector = ProcessCollector(proc=str(proc), root=str(tmp_path / "none"), cores=lambda: 2)
        registry = registry_for(collector)
        assert 0.0 == value(registry, "process_cpu_utilization_ratio")
        stat = (proc / "self" / "stat").read_text().split()
        ticks = int(stat[15])  # utime, after the three-word command name
        stat[15] = str(ticks + 1000 * ticks)  # a large jump in user time: utilization > 0
        (proc / "self" / "stat").write_text(" ".join(stat))
        utilization = value(registry, "process_cpu_utilization_ratio")
        assert utilization is not None
        assert utilization > 0


def test_not_linux_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On another operating system the cgroup collector is down with reason not_linux."""
    from obskit.metrics.use import cgroup

    monkeypatch.setattr(cgroup.sys, "platform", "darwin")
    registry = registry_for(CgroupCollector())
    assert 0.0 == value(registry, "obskit_collector_up", collector="cgroup")
    info = "obskit_collector_unavailable_info"
    assert 1.0 == value(registry, info, collector="cgroup", reason="not_linux")


def test_permission_denied_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A refused read leaves its series out and says permission_denied (root cannot chmod it)."""
    import builtins

    from obskit.metrics.use import _files

    root = v2_tree(tmp_path / "cg")
    proc = str(proc_tree(tmp_path / "proc", V2_CGROUP))
    refused = str(root / "kubepods/pod1/app/memory.stat")

    def guarded_open(path: str, *args: object, **kwargs: object) -> object:
        if str(path) == refused:
            raise PermissionError(13, "Permission denied", path)
        return builtins.open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(_files, "open", guarded_open, raising=False)
    registry = registry_for(CgroupCollector(root=str(root), proc=proc))
    assert 1.0 == value(registry, "obskit_collector_up", collector="cgroup")
    assert 104857600 == value(registry, "obskit_cgroup_memory_working_set_bytes")
    info = "obskit_collector_unavailable_info"
    assert 1.0 == value(registry, info, collector="cgroup", reason="permission_denied")


def test_denied_cgroup_file_is_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """When /proc/self/cgroup itself is refused the collector is down with permission_denied."""
    import builtins

    from obskit.metrics.use import _files

    root = str(v2_tree(tmp_path / "cg"))
    proc = proc_tree(tmp_path / "proc", V2_CGROUP)
    refused = str(proc / "self" / "cgroup")

    def guarded_open(path: str, *args: object, **kwargs: object) -> object:
        if str(path) == refused:
            raise PermissionError(13, "Permission denied", path)
        return builtins.open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(_files, "open", guarded_open, raising=False)
    registry = registry_for(CgroupCollector(root=root, proc=str(proc)))
    assert 0.0 == value(registry, "obskit_collector_up", collector="cgroup")
    info = "obskit_collector_unavailable_info"
    assert 1.0 == value(registry, info, collector="cgroup", reason="permission_denied")
