"""Container resources from the process's cgroup (v2, v1 or hybrid): limits, throttling, OOM, PSI.

The cgroup is found from ``/proc/self/cgroup`` under a cgroup filesystem root (both injectable, so
tests run against fixture trees). Limits are *effective* limits: the smallest one set on the
cgroup or any ancestor up to the root, because a limit on a parent constrains the child just as
much. Every file and key may be absent; an absent value leaves its series out, and a reason is
noted in ``obskit_collector_unavailable_info`` where the absence means "cannot see", not "none".

Families (see docs/use.md for PromQL):

- ``obskit_cgroup_cpu_limit_cores``: CPU quota in cores (only when there is one)
- ``obskit_cgroup_cpu_usage_seconds_total``: CPU time used by the whole cgroup
- ``obskit_cgroup_cpu_periods_total``, ``obskit_cgroup_cpu_throttled_periods_total``,
  ``obskit_cgroup_cpu_throttled_seconds_total``: CFS enforcement periods and throttling
- ``obskit_cgroup_memory_usage_bytes``, ``obskit_cgroup_memory_working_set_bytes``,
  ``obskit_cgroup_memory_limit_bytes`` (when limited), ``obskit_cgroup_memory_utilization_ratio``
  (working set / limit), ``obskit_cgroup_memory_limit_hits_total``,
  ``obskit_cgroup_memory_oom_kills_total``
- ``obskit_pressure_stalled_seconds_total{resource,stall,scope}``: PSI stall time
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from obskit.metrics import catalogue
from obskit.metrics.use._files import FileAccess, join
from obskit.metrics.use.collector import (
    FamilySpec,
    Notes,
    Reading,
    Unavailable,
    empty_families,
    standalone_collect,
)

__all__ = ["CgroupCollector", "CgroupLayout", "CgroupReader", "CgroupStats"]

DEFAULT_ROOT = "/sys/fs/cgroup"
DEFAULT_PROC = "/proc"
# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit value; anything this large
# is no limit on any real machine.
_V1_UNLIMITED = 1 << 60
_PSI_RESOURCES = ("cpu", "memory", "io")
# How long limits (and the cgroup's location) are trusted before they are looked up again.
LIMITS_TTL_S = 30.0


@dataclasses.dataclass(frozen=True)
class CgroupLayout:
    """Where this process's cgroup files are; ``None`` where a controller is not visible."""

    version: int  # 2 (unified), 1 (v1, possibly with a v2 hierarchy beside it: "hybrid")
    cpu: str | None  # v2: the cgroup directory; v1: the cpu controller's directory
    cpuacct: str | None
    memory: str | None
    psi: str | None  # a directory with cpu.pressure etc. for this cgroup (v2 or hybrid)
    root: str  # limits are looked up from each directory up to (and including) this root


@dataclasses.dataclass
class CgroupStats:
    """One reading of the cgroup; ``None`` means absent (no limit, no file or no key)."""

    version: int
    cpu_limit_cores: float | None = None
    cpu_usage_seconds: float | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_seconds: float | None = None
    memory_usage_bytes: int | None = None
    memory_working_set_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_limit_hits: int | None = None
    oom_kills: int | None = None
    # (resource, "some" | "full") -> stalled seconds since boot
    pressure: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    pressure_scope: str | None = None


class CgroupReader:
    """Finds this process's cgroup under ``root`` and reads its limits and counters.

    ``root`` is the cgroup filesystem mount point (``/sys/fs/cgroup``), ``proc`` the procfs mount
    point; both are injectable so tests read fixture trees.
    """

    def __init__(self, root: str = DEFAULT_ROOT, proc: str = DEFAULT_PROC) -> None:
        self.root = root
        self.proc = proc
        self._layout: CgroupLayout | None = None
        self._layout_checked = 0.0
        self._limits: tuple[float, tuple[float | None, int | None]] | None = None

    # --- discovery ---

    def layout(self) -> CgroupLayout:
        """The cgroup directories of this process; raises :class:`Unavailable` without one."""
        layout, now = self._layout, time.monotonic()
        if layout is not None and now - self._layout_checked < LIMITS_TTL_S:
            return layout
        if layout is None or not _exists_all(layout):
            layout = self._layout = self._discover()
        self._layout_checked = now
        return layout

    def _discover(self) -> CgroupLayout:
        if self.proc == DEFAULT_PROC and not sys.platform.startswith("linux"):
            raise Unavailable("not_linux")
        access = FileAccess()
        text = access.text(os.path.join(self.proc, "self", "cgroup"))
        if text is None:
            raise Unavailable("permission_denied" if access.denied else "no_cgroup")
        paths: dict[str, str] = {}  # controller ("" for the v2 hierarchy) -> path in hierarchy
        mounts: dict[str, str] = {}  # controller -> v1 mount directory name ("cpu,cpuacct")
        for line in text.splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            hierarchy_id, controllers, path = parts
            if hierarchy_id == "0" and controllers == "":
                paths[""] = path
                continue
            for controller in controllers.split(","):
                paths[controller] = path
                mounts[controller] = controllers
        if not os.path.isdir(self.root):
            raise Unavailable("no_cgroup")
        if os.path.exists(os.path.join(self.root, "cgroup.controllers")):
            unified = self._dir(self.root, paths.get("", "/"))
            return CgroupLayout(2, unified, unified, unified, unified, self.root)
        dirs = {
            controller: self._v1_dir(controller, mounts.get(controller), paths.get(controller))
            for controller in ("cpu", "cpuacct", "memory")
        }
        psi = None
        hybrid = os.path.join(self.root, "unified")
        if os.path.exists(os.path.join(hybrid, "cgroup.procs")):
            psi = self._dir(hybrid, paths.get("", "/"))
        if not any(dirs.values()):
            raise Unavailable("no_cgroup")
        return CgroupLayout(1, dirs["cpu"], dirs["cpuacct"], dirs["memory"], psi, self.root)

    @staticmethod
    def _dir(mount: str, path: str) -> str:
        # Without a cgroup namespace the path is the host's; inside a container the mount is
        # often already this cgroup, so a path that does not exist means "the mount itself".
        candidate = join(mount, path)
        return candidate if os.path.isdir(candidate) else mount

    def _v1_dir(self, controller: str, mount_name: str | None, path: str | None) -> str | None:
        for name in (mount_name, controller, "cpu,cpuacct", "cpuacct,cpu"):
            if name is None:
                continue
            mount = os.path.join(self.root, name)
            if os.path.isdir(mount):
                return self._dir(mount, path or "/")
        return None

    # --- reading ---

    def read(self, notes: Notes | None = None) -> CgroupStats:
        """Limits and counters now; ``notes`` receives reasons for parts that cannot be seen."""
        notes = notes if notes is not None else []
        layout = self.layout()
        access = FileAccess()
        stats = CgroupStats(version=layout.version)
        if layout.version == 2:
            self._read_v2(layout, stats, access)
        else:
            self._read_v1(layout, stats, access)
        stats.cpu_limit_cores, stats.memory_limit_bytes = self.limits()
        self._read_pressure(layout, stats, access, notes)
        if access.denied:
            notes.append("permission_denied")
        return stats

    def limits(self) -> tuple[float | None, int | None]:
        """Effective (CPU cores, memory bytes) limits, each None when unlimited or unknown.

        Limits change rarely (a resize) while finding them walks every ancestor: they are
        re-read at most every ``LIMITS_TTL_S`` seconds.
        """
        now = time.monotonic()
        cached = self._limits
        if cached is not None and now - cached[0] < LIMITS_TTL_S:
            return cached[1]
        try:
            layout = self.layout()
        except Unavailable:
            return None, None
        access = FileAccess()
        if layout.version == 2:
            limits = self._cpu_limit_v2(layout, access), self._memory_limit_v2(layout, access)
        else:
            limits = self._cpu_limit_v1(layout, access), self._memory_limit_v1(layout, access)
        self._limits = (now, limits)
        return limits

    def _ancestors(self, directory: str | None, stop: str) -> Iterator[str]:
        """``directory`` and its parents, up to and including ``stop`` (or the mount)."""
        if directory is None:
            return
        current = os.path.normpath(directory)
        stop = os.path.normpath(stop)
        while True:
            yield current
            parent = os.path.dirname(current)
            if current == stop or parent == current or not parent.startswith(stop):
                return
            current = parent

    def _read_v2(self, layout: CgroupLayout, stats: CgroupStats, access: FileAccess) -> None:
        assert layout.cpu is not None
        cpu = access.keyed(os.path.join(layout.cpu, "cpu.stat"))
        stats.cpu_usage_seconds = _scaled(cpu.get("usage_usec"), 1e-6)
        stats.cpu_periods = cpu.get("nr_periods")
        stats.cpu_throttled_periods = cpu.get("nr_throttled")
        stats.cpu_throttled_seconds = _scaled(cpu.get("throttled_usec"), 1e-6)
        stats.memory_usage_bytes = access.first_int(os.path.join(layout.cpu, "memory.current"))
        memory_stat = access.keyed(os.path.join(layout.cpu, "memory.stat"))
        stats.memory_working_set_bytes = _working_set(
            stats.memory_usage_bytes, memory_stat.get("inactive_file")
        )
        events = access.keyed(os.path.join(layout.cpu, "memory.events"))
        stats.memory_limit_hits = events.get("max")
        stats.oom_kills = events.get("oom_kill")

    def _cpu_limit_v2(self, layout: CgroupLayout, access: FileAccess) -> float | None:
        best: float | None = None
        for directory in self._ancestors(layout.cpu, layout.root):
            text = access.text(os.path.join(directory, "cpu.max"))
            parts = text.split() if text else []
            if len(parts) >= 2 and parts[0] != "max":
                try:
                    cores = int(parts[0]) / int(parts[1])
                except (ValueError, ZeroDivisionError):
                    continue
                best = cores if best is None else min(best, cores)
        return best

    def _memory_limit_v2(self, layout: CgroupLayout, access: FileAccess) -> int | None:
        best: int | None = None
        for directory in self._ancestors(layout.memory, layout.root):
            text = access.text(os.path.join(directory, "memory.max"))
            value = text.strip() if text else "max"
            if value != "max" and value.isdigit():
                best = int(value) if best is None else min(best, int(value))
        return best

    def _read_v1(self, layout: CgroupLayout, stats: CgroupStats, access: FileAccess) -> None:
        if layout.cpu is not None:
            cpu = access.keyed(os.path.join(layout.cpu, "cpu.stat"))
            stats.cpu_periods = cpu.get("nr_periods")
            stats.cpu_throttled_periods = cpu.get("nr_throttled")
            stats.cpu_throttled_seconds = _scaled(cpu.get("throttled_time"), 1e-9)
        if layout.cpuacct is not None:
            usage = access.first_int(os.path.join(layout.cpuacct, "cpuacct.usage"))
            stats.cpu_usage_seconds = _scaled(usage, 1e-9)
        memory = layout.memory
        if memory is not None:
            usage = access.first_int(os.path.join(memory, "memory.usage_in_bytes"))
            stats.memory_usage_bytes = usage
            memory_stat = access.keyed(os.path.join(memory, "memory.stat"))
            stats.memory_working_set_bytes = _working_set(
                stats.memory_usage_bytes, memory_stat.get("total_inactive_file")
            )
            stats.memory_limit_hits = access.first_int(os.path.join(memory, "memory.failcnt"))
            oom_control = access.keyed(os.path.join(memory, "memory.oom_control"))
            stats.oom_kills = oom_control.get("oom_kill")

    def _cpu_limit_v1(self, layout: CgroupLayout, access: FileAccess) -> float | None:
        best: float | None = None
        mount = _mount_of(layout.cpu, self.root)
        for directory in self._ancestors(layout.cpu, mount):
            quota = access.first_int(os.path.join(directory, "cpu.cfs_quota_us"))
            period = access.first_int(os.path.join(directory, "cpu.cfs_period_us"))
            if quota is not None and quota > 0 and period:
                best = quota / period if best is None else min(best, quota / period)
        return best

    def _memory_limit_v1(self, layout: CgroupLayout, access: FileAccess) -> int | None:
        best: int | None = None
        mount = _mount_of(layout.memory, self.root)
        for directory in self._ancestors(layout.memory, mount):
            limit = access.first_int(os.path.join(directory, "memory.limit_in_bytes"))
            if limit is not None and 0 < limit < _V1_UNLIMITED:
                best = limit if best is None else min(best, limit)
        return best

    def _read_pressure(
        self, layout: CgroupLayout, stats: CgroupStats, access: FileAccess, notes: Notes
    ) -> None:
        # A cgroup's own files are "cpu.pressure"; the system-wide ones "/proc/pressure/cpu".
        sources = []
        if layout.psi is not None:
            sources.append(("cgroup", os.path.join(layout.psi, "{}.pressure")))
        sources.append(("system", os.path.join(self.proc, "pressure", "{}")))
        for scope, pattern in sources:
            for resource in _PSI_RESOURCES:
                text = access.text(pattern.format(resource))
                for line in (text or "").splitlines():
                    stall, _, rest = line.partition(" ")
                    for field in rest.split():
                        key, _, value = field.partition("=")
                        if key == "total" and value.isdigit():
                            stats.pressure[(resource, stall)] = int(value) * 1e-6
            if stats.pressure:
                stats.pressure_scope = scope
                return
        notes.append("psi_not_offered")


class CgroupCollector:
    """USE source for the process's cgroup; register it, or let ``init()`` do so.

    ``root`` and ``proc`` default to the real ``/sys/fs/cgroup`` and ``/proc``; ``reader`` shares
    one (and its cached limits) with a :class:`~obskit.metrics.use.process.ProcessCollector`.
    """

    name = "cgroup"

    def __init__(
        self, root: str = DEFAULT_ROOT, proc: str = DEFAULT_PROC, reader: CgroupReader | None = None
    ) -> None:
        self.reader = reader if reader is not None else CgroupReader(root=root, proc=proc)

    def describe(self) -> list[Metric]:
        """Empty families with every name this source may yield."""
        return empty_families(_FAMILIES)

    def collect(self) -> Iterator[Metric]:
        """Families plus ``obskit_collector_up`` when registered on its own."""
        return standalone_collect(self)

    def read(self, notes: Notes) -> list[Metric]:
        """Read the cgroup now."""
        stats = self.reader.read(notes)
        reading = Reading(_FAMILIES)
        put = reading.put

        utilization = None
        if stats.memory_limit_bytes and stats.memory_working_set_bytes is not None:
            utilization = stats.memory_working_set_bytes / stats.memory_limit_bytes
        put("obskit_cgroup_info", 1.0, (str(stats.version),))
        put("obskit_cgroup_cpu_limit_cores", stats.cpu_limit_cores)
        put("obskit_cgroup_cpu_usage_seconds", stats.cpu_usage_seconds)
        put("obskit_cgroup_cpu_periods", stats.cpu_periods)
        put("obskit_cgroup_cpu_throttled_periods", stats.cpu_throttled_periods)
        put("obskit_cgroup_cpu_throttled_seconds", stats.cpu_throttled_seconds)
        put("obskit_cgroup_memory_usage_bytes", stats.memory_usage_bytes)
        put("obskit_cgroup_memory_working_set_bytes", stats.memory_working_set_bytes)
        put("obskit_cgroup_memory_limit_bytes", stats.memory_limit_bytes)
        put("obskit_cgroup_memory_utilization_ratio", utilization)
        put("obskit_cgroup_memory_limit_hits", stats.memory_limit_hits)
        put("obskit_cgroup_memory_oom_kills", stats.oom_kills)
        for (resource, stall), seconds in sorted(stats.pressure.items()):
            put(
                "obskit_pressure_stalled_seconds",
                seconds,
                (resource, stall, stats.pressure_scope or "system"),
            )
        return reading.families()


_FAMILIES: tuple[FamilySpec, ...] = catalogue.group("use.cgroup")


def _exists_all(layout: CgroupLayout) -> bool:
    return all(d is None or os.path.isdir(d) for d in (layout.cpu, layout.cpuacct, layout.memory))


def _scaled(value: int | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _working_set(usage: int | None, inactive_file: int | None) -> int | None:
    if usage is None:
        return None
    return max(0, usage - (inactive_file or 0))


def _mount_of(directory: str | None, root: str) -> str:
    """The v1 controller mount containing ``directory`` (the first path component under root)."""
    if directory is None:
        return root
    relative = os.path.relpath(directory, root)
    return os.path.join(root, relative.split(os.sep, 1)[0])
