"""This process's CPU, memory, file descriptors, threads and context switches, from procfs.

Utilization is relative to what the process may actually use: CPU against the cgroup quota when
there is one (else against the cores it may run on), memory against the cgroup memory limit (else
the machine's memory). Names follow OpenTelemetry's ``process.*`` semantic conventions, mapped to
Prometheus with units; where no convention exists the family is ``obskit_*``, except
``process_start_time_seconds``, Prometheus' own name for the one figure semconv has no
counterpart for. They replace prometheus-client's ``process_*`` collector (see ``use/wiring.py``).

Without procfs (not Linux) only CPU time is available (from ``os.times()``); the rest is noted as
``no_procfs`` in ``obskit_collector_unavailable_info``.
"""

from __future__ import annotations

import os
import sys

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric

from obskit import _locks
from obskit.metrics import catalogue
from obskit.metrics.use._files import FileAccess
from obskit.metrics.use.cgroup import DEFAULT_PROC, DEFAULT_ROOT, CgroupReader
from obskit.metrics.use.collector import (
    FamilySpec,
    Notes,
    Reading,
    empty_families,
    standalone_collect,
)

__all__ = ["ProcessCollector", "available_cores"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available_cores() -> int:
    """CPUs this process may be scheduled on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class ProcessCollector:
    """USE source for this process.

    ``proc`` is the procfs mount point; ``cgroup`` the reader of the cgroup limits (by default one
    over ``root``); ``cores`` the CPU count used when there is no quota (default: affinity mask).
    """

    name = "process"

    def __init__(
        self,
        proc: str = DEFAULT_PROC,
        root: str = DEFAULT_ROOT,
        cgroup: CgroupReader | None = None,
        cores: Callable[[], int] = available_cores,
    ) -> None:
        self.proc = proc
        self.cgroup = cgroup if cgroup is not None else CgroupReader(root=root, proc=proc)
        self._cores = cores
        self._lock = _locks.lock()  # guards the previous reading (concurrent scrapes)
        self._previous: tuple[float, float] | None = None  # (cpu seconds, monotonic time)
        self._mem_total: int | None = None
        self._start_time: float | None = None  # seconds since the epoch, read once per process

    def after_fork_in_child(self) -> None:
        """Utilization restarts from the child's own first reading."""
        self._previous = None
        self._start_time = None

    def describe(self) -> list[Metric]:
        """Empty families with every name this source may yield."""
        return empty_families(_FAMILIES)

    def collect(self) -> Iterator[Metric]:
        """Families plus ``obskit_collector_up`` when registered on its own."""
        return standalone_collect(self)

    def read(self, notes: Notes) -> list[Metric]:
        """Read procfs now."""
        access = FileAccess()
        own = os.path.join(self.proc, "self")
        user, system, vsize, started = self._cpu_and_vsize(access, own, notes)
        status = _status(access.text(os.path.join(own, "status")))
        cpu_limit, memory_limit = self.cgroup.limits()
        cores = cpu_limit if cpu_limit is not None else float(self._cores())
        if memory_limit is None:
            memory_limit = self._machine_memory(access)
        rss = _kib(status, "VmRSS")

        reading = Reading(_FAMILIES)
        put = reading.put

        put("process_start_time_seconds", self._started_at(access, started))
        put("process_cpu_time_seconds", user, ("user",))
        put("process_cpu_time_seconds", system, ("system",))
        put("obskit_process_cpu_available_cores", cores)
        put("process_cpu_utilization_ratio", self._utilization(user, system, cores))
        put("process_memory_usage_bytes", rss)
        put("process_memory_virtual_bytes", vsize)
        put("obskit_process_memory_limit_bytes", memory_limit)
        if rss is not None and memory_limit:
            put("process_memory_utilization_ratio", rss / memory_limit)
        put("process_threads", status.get("Threads"))
        put("process_unix_file_descriptors", self._fd_count(access, own))
        put("obskit_process_unix_file_descriptors_limit", self._fd_limit(access, own))
        put("process_context_switches", status.get("voluntary_ctxt_switches"), ("voluntary",))
        put(
            "process_context_switches",
            status.get("nonvoluntary_ctxt_switches"),
            ("involuntary",),
        )
        if access.denied:
            notes.append("permission_denied")
        return reading.families()

    def _cpu_and_vsize(
        self, access: FileAccess, own: str, notes: Notes
    ) -> tuple[float, float, float | None, int | None]:
        """User and system CPU seconds, virtual size, and the start in clock ticks after boot."""
        text = access.text(os.path.join(own, "stat"))
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = text[text.rfind(")") + 1 :].split() if text else []
        if len(fields) >= 21:
            try:
                user = int(fields[11]) / _CLOCK_TICKS
                system = int(fields[12]) / _CLOCK_TICKS
                return user, system, float(fields[20]), int(fields[19])
            except ValueError:
                pass
        # Without procfs the CPU time still comes from the OS; the rest is noted as missing.
        notes.append("no_procfs" if not sys.platform.startswith("linux") else "stat_unreadable")
        times = os.times()
        return times.user, times.system, None, None

    def _started_at(self, access: FileAccess, ticks: int | None) -> float | None:
        """When this process started (Unix time): boot time plus the start offset, read once."""
        if self._start_time is None and ticks is not None:
            for line in (access.text(os.path.join(self.proc, "stat")) or "").splitlines():
                if line.startswith("btime "):
                    boot = line[6:].strip()
                    if boot.isdigit():
                        self._start_time = int(boot) + ticks / _CLOCK_TICKS
                    break
        return self._start_time

    def _utilization(self, user: float, system: float, cores: float) -> float:
        """CPU used since the previous scrape (the first: since this collector was created)."""
        now, cpu = time.monotonic(), user + system
        with self._lock:
            previous, self._previous = self._previous, (cpu, now)
        if previous is None:
            return 0.0
        elapsed = now - previous[1]
        if elapsed <= 0 or cores <= 0:
            return 0.0
        return max(0.0, (cpu - previous[0]) / (elapsed * cores))

    def _machine_memory(self, access: FileAccess) -> int | None:
        # MemTotal does not change while the process runs: read it once.
        if self._mem_total is None:
            meminfo = _status(access.text(os.path.join(self.proc, "meminfo")))
            self._mem_total = _kib(meminfo, "MemTotal")
        return self._mem_total

    @staticmethod
    def _fd_count(access: FileAccess, own: str) -> int | None:
        try:
            return len(os.listdir(os.path.join(own, "fd")))
        except PermissionError:
            access.denied = True
        except OSError:
            pass
        return None

    def _fd_limit(self, access: FileAccess, own: str) -> int | None:
        if self.proc == DEFAULT_PROC and resource is not None:
            # The live soft limit with one system call instead of parsing /proc/self/limits.
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            return None if limit == resource.RLIM_INFINITY else limit
        for line in (access.text(os.path.join(own, "limits")) or "").splitlines():
            if line.startswith("Max open files"):
                soft = line[len("Max open files") :].split()[:1]
                return int(soft[0]) if soft and soft[0].isdigit() else None
        return None


_STATUS_KEYS = frozenset(
    ("VmRSS", "Threads", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches", "MemTotal")
)


def _status(text: str | None) -> dict[str, int]:
    """The ``Key:  value [kB]`` lines obskit reads (``/proc/self/status``, ``/proc/meminfo``)."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        if key in _STATUS_KEYS:
            first = rest.split(None, 1)[:1]
            if first and first[0].isdigit():
                values[key] = int(first[0])
    return values


def _kib(values: dict[str, int], key: str) -> int | None:
    value = values.get(key)
    return None if value is None else value * 1024


_FAMILIES: tuple[FamilySpec, ...] = catalogue.group("use.process")
