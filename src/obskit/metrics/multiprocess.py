"""Multi-worker metrics with no user hook: a shared directory per server, found by each worker.

Under gunicorn (or ``uvicorn --workers``) each worker is a separate process, so in-memory counts
would show one worker's share. prometheus-client's multi-process mode solves that with
memory-mapped files in a shared directory; what it leaves to the user is choosing, cleaning and
maintaining that directory, and setting ``PROMETHEUS_MULTIPROC_DIR`` before anything imports it.
obskit does all of that at ``init()``:

* **Who is a worker.** A process whose parent is a known pre-fork server (its command line names
  gunicorn, uvicorn or hypercorn) is a worker of that parent. A gunicorn master that imports the
  application itself (``--preload``) is recognised too: its workers inherit the runtime by fork.
* **Which directory.** ``<tmp>/obskit-metrics-<uid>/<master pid>-<master start time>``: every
  worker of one master finds the same directory, a restarted master gets a fresh (hence clean)
  one, and a recycled pid cannot collide because the start time is part of the key. Directories
  of masters that are gone are removed at start. An explicitly configured directory
  (``multiprocess_dir`` / ``PROMETHEUS_MULTIPROC_DIR``) is used as given.
* **Dead workers.** At scrape time (at most once a second) the live-gauge files of workers whose
  pid no longer exists are removed (``mark_process_dead``), so in-flight gauges do not keep the
  last value of a worker that crashed mid-request. Counters and histograms of dead workers stay
  part of the totals, but folded into one archive file per type: a server that recycles its
  workers (gunicorn ``max_requests``) would otherwise grow a file per type per worker ever
  started, and a directory of thousands of files makes every scrape slow. Scrapes hold a shared
  lock on the directory while reading; folding takes it exclusively (and skips when busy).

Without ``/proc`` (not Linux) no server is detected and metrics stay per process unless a
directory is configured.
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import mmap_dict as _mmap_dict
from prometheus_client import multiprocess as _mp
from prometheus_client import values as _values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import mmap_key
from prometheus_client.registry import Collector

from obskit import _locks

__all__ = ["ENV", "Multiprocess", "detect_master", "setup"]

# prometheus-client's multi-process helpers carry no type annotations.
_value_class_for: Any = _values.MultiProcessValue
_MultiProcessCollector: Any = _mp.MultiProcessCollector
_mark_process_dead: Any = _mp.mark_process_dead
_MmapedDict: Any = _mmap_dict.MmapedDict

try:
    import fcntl

    _LOCKS = True
except ImportError:  # not POSIX: no server detection (no /proc) and no directory locks
    _LOCKS = False

ENV = "PROMETHEUS_MULTIPROC_DIR"
SERVERS = frozenset(("gunicorn", "uvicorn", "hypercorn"))
MARK_DEAD_INTERVAL_S = 1.0


def _adopt_value_lock(value_class: Any) -> bool:
    """Have the one lock of prometheus-client's memory-mapped values re-made in a forked child.

    Every value of a ``MultiProcessValue`` class writes under one lock, a closure variable of the
    class. A fork while another thread writes (a request, the USE publisher) would leave it held
    in the child, whose first write would then wait for ever. Returns whether it was found (a
    test checks that it is, so that a prometheus-client upgrade cannot hide it).
    """
    try:
        found = inspect.getclosurevars(value_class.inc).nonlocals.get("lock")
    except (AttributeError, TypeError):  # not the class this was written against
        return False
    return found is not None and _locks.adopt(found)


class Multiprocess:
    """The shared directory of one server's workers, and the value class writing into it."""

    def __init__(self, path: str, *, managed: bool) -> None:
        self.path = path
        self.managed = managed
        self._previous_env = os.environ.get(ENV)
        # prometheus-client's memory-mapped values read the directory from the environment when
        # they open their file; workers forked or spawned later inherit it.
        os.environ[ENV] = path
        self.value_class: Any = _value_class_for()
        _adopt_value_lock(self.value_class)
        self._last_marked = 0.0
        self._lock = _locks.lock()

    def collector(self) -> Collector:
        """Reads every worker's files (marking dead workers first)."""
        return _DirectoryCollector(self)

    def mark_dead_workers(self) -> None:
        """Drop live gauges of workers that no longer exist, fold their files (rate-limited)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_marked < MARK_DEAD_INTERVAL_S:
                return
            self._last_marked = now
        dead: dict[int, list[str]] = {}
        alive: dict[int, bool] = {}
        for path in glob.glob(os.path.join(self.path, "*_*.db")):
            tail = os.path.basename(path)[:-3].rsplit("_", 1)[-1]
            if not tail.isdigit():
                continue
            pid = int(tail)
            if pid not in alive:
                alive[pid] = _alive(pid)
            if not alive[pid]:
                dead.setdefault(pid, []).append(path)
        for pid in dead:
            _mark_process_dead(pid, self.path)
        folded = [
            path
            for paths in dead.values()
            for path in paths
            if os.path.basename(path).startswith(("counter_", "histogram_"))
        ]
        if folded:
            self._fold(folded)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Held by a scrape while it reads the files: folding waits for no one, it skips."""
        if not _LOCKS:
            yield
            return
        with open(os.path.join(self.path, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _fold(self, paths: list[str]) -> None:
        if not _LOCKS:
            return  # without a lock a scrape could read half-folded files: keep them as they are
        with open(os.path.join(self.path, ".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # a scrape or another worker is busy here: next time
            try:
                for typ in ("counter", "histogram"):
                    mine = [p for p in paths if os.path.basename(p).startswith(typ + "_")]
                    if mine:
                        _fold_into_archive(self.path, typ, [p for p in mine if os.path.exists(p)])
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        """Restore the environment as it was before ``init()``; close our files."""
        if os.environ.get(ENV) == self.path:
            if self._previous_env is None:
                del os.environ[ENV]
            else:
                os.environ[ENV] = self._previous_env
        with contextlib.suppress(Exception):
            self.value_class.close_all_files()


class _DirectoryCollector(Collector):
    def __init__(self, owner: Multiprocess) -> None:
        self._owner = owner
        self._files = _MultiProcessCollector(None, owner.path)

    def collect(self) -> Iterator[Metric]:
        self._owner.mark_dead_workers()
        with self._owner.reading():
            metrics = list(self._files.collect())
        yield from metrics


def _fold_into_archive(directory: str, typ: str, dead: list[str]) -> None:
    """Sum ``dead`` workers' files (and the archive so far) into ``<typ>_archive.db``."""
    archive = os.path.join(directory, f"{typ}_archive.db")
    sources = [*dead, archive] if os.path.exists(archive) else list(dead)
    merged = _MultiProcessCollector.merge(sources, accumulate=False)
    # Written beside under a name the collector's "*.db" glob ignores, then renamed over.
    staging = os.path.join(directory, f".{typ}_archive.staging")
    with contextlib.suppress(FileNotFoundError):
        os.remove(staging)
    out = _MmapedDict(staging)
    try:
        for metric in merged:
            for sample in metric.samples:
                labels = dict(sample.labels)
                key = mmap_key(
                    metric.name,
                    sample.name,
                    list(labels),
                    list(labels.values()),
                    metric.documentation,
                )
                out.write_value(key, sample.value, 0.0)
    finally:
        out.close()
    os.replace(staging, archive)
    for path in dead:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def setup(configured_dir: str | None) -> Multiprocess | None:
    """Multi-process mode for this process, or None when it is not a worker of a server."""
    if configured_dir:
        os.makedirs(configured_dir, exist_ok=True)
        return Multiprocess(configured_dir, managed=False)
    master = detect_master()
    if master is None:
        return None
    base = os.path.join(tempfile.gettempdir(), f"obskit-metrics-{os.getuid()}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    _remove_stale(base)
    path = os.path.join(base, f"{master}-{_start_time(master)}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return Multiprocess(path, managed=True)


def detect_master() -> int | None:
    """The pid of the pre-fork server master this process belongs to, or None."""
    parent = os.getppid()
    if _is_server(_cmdline(parent)):
        return parent
    # A gunicorn master that loaded the app before forking (--preload): its workers inherit.
    if "gunicorn.arbiter" in sys.modules and _is_server(_cmdline(os.getpid())):
        return os.getpid()
    return None


def _is_server(args: list[str]) -> bool:
    # "python -m gunicorn", "/venv/bin/gunicorn", "gunicorn": the server is one of the first words.
    return any(os.path.basename(arg) in SERVERS for arg in args[:3])


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _start_time(pid: int) -> str:
    """The process start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "0"
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else "0"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(base: str) -> None:
    """Remove the directories of masters that are no longer running (one process at a time)."""
    with open(os.path.join(base, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for entry in os.listdir(base):
                pid, sep, start = entry.partition("-")
                if not sep or not pid.isdigit():
                    continue
                if _start_time(int(pid)) != start:
                    shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
