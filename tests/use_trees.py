"""Builders of fixture cgroup trees and a fixture /proc for the USE collector tests."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write(base: Path, files: dict[str, str]) -> Path:
    """Create ``files`` (relative path -> content) under ``base``; returns ``base``."""
    for relative, content in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return base


def proc_tree(base: Path, cgroup: str, *, psi: bool = True, fds: int = 3) -> Path:
    """A /proc with ``self/{stat,status,limits,cgroup,fd}``, ``meminfo`` and optional PSI."""
    stat_fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0"]
    stat_fields += [str(250 * CLOCK_TICKS // 100), str(50 * CLOCK_TICKS // 100)]  # 2.5 s, 0.5 s
    stat_fields += ["0", "0", "20", "0", "7", "0", "100", "123456789", "42"]
    files = {
        "self/stat": "4242 (my (odd) name) " + " ".join(stat_fields) + " 0 0 0\n",
        "self/status": (
            "Name:\tpython\nVmRSS:\t   2048 kB\nThreads:\t7\n"
            "voluntary_ctxt_switches:\t11\nnonvoluntary_ctxt_switches:\t5\n"
        ),
        "self/limits": (
            "Limit                     Soft Limit           Hard Limit           Units\n"
            "Max open files            1024                 4096                 files\n"
        ),
        "self/cgroup": cgroup,
        "meminfo": "MemTotal:        8192 kB\nMemFree:  100 kB\n",
    }
    if psi:
        files["pressure/cpu"] = (
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        )
        files["pressure/memory"] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=250000\n"
        files["pressure/io"] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=3\n"
    write(base, files)
    for number in range(fds):
        (base / "self" / "fd" / str(number)).parent.mkdir(parents=True, exist_ok=True)
        (base / "self" / "fd" / str(number)).write_text("")
    return base


V2_CGROUP = "0::/kubepods/pod1/app\n"


def v2_tree(base: Path, *, limited: bool = True) -> Path:
    """A cgroup v2 root where the process sits in /kubepods/pod1/app (limits on two levels)."""
    app = "kubepods/pod1/app/"
    pod = "kubepods/pod1/"
    files = {
        "cgroup.controllers": "cpu memory io\n",
        app + "cpu.stat": (
            "usage_usec 7500000\nuser_usec 5000000\nsystem_usec 2500000\n"
            "nr_periods 120\nnr_throttled 30\nthrottled_usec 4500000\n"
        ),
        app + "memory.current": "104857600\n",
        app + "memory.stat": "anon 50000000\nfile 40000000\ninactive_file 4857600\n",
        app + "memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n",
        app + "cpu.pressure": (
            "some avg10=1.00 avg60=0.50 avg300=0.10 total=2000000\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n"
        ),
        app + "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        app + "io.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n",
    }
    if limited:
        files[app + "cpu.max"] = "150000 100000\n"  # 1.5 cores
        files[pod + "cpu.max"] = "200000 100000\n"
        files[app + "memory.max"] = "max\n"
        files[pod + "memory.max"] = "209715200\n"  # 200 MiB, on the parent
    else:
        files[app + "cpu.max"] = "max 100000\n"
        files[app + "memory.max"] = "max\n"
    return write(base, files)


V1_CGROUP = (
    "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n"
)


def v1_tree(base: Path) -> Path:
    """A cgroup v1 root with cpu,cpuacct and memory controllers, the process in /docker/abc."""
    cpu = "cpu,cpuacct/docker/abc/"
    memory = "memory/docker/abc/"
    return write(
        base,
        {
            cpu + "cpu.cfs_quota_us": "50000\n",
            cpu + "cpu.cfs_period_us": "100000\n",
            cpu + "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 2000000000\n",
            cpu + "cpuacct.usage": "3000000000\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            memory + "memory.usage_in_bytes": "52428800\n",
            memory + "memory.limit_in_bytes": "104857600\n",
            memory + "memory.stat": "cache 100\ntotal_inactive_file 2428800\n",
            memory + "memory.failcnt": "3\n",
            memory + "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
