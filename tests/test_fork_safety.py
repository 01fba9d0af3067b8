"""A fork while other threads are inside obskit: the child never hangs, whatever they held."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import values

from conftest import PYTHON, SRC, subprocess_env
from fork_scenarios import SCENARIOS
from obskit.metrics import multiprocess

SCRIPT = Path(__file__).with_name("fork_scenarios.py")
FORKS = 20  # a path that hangs one fork in 20 (5%) fails here with probability 1 - 0.95^20 = 64%


def _run(scenario: str) -> dict[str, int]:
    done = subprocess.run(
        [PYTHON, "-W", "ignore::DeprecationWarning", str(SCRIPT), scenario, str(FORKS)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert 0 == done.returncode, done.stderr[-3000:]
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    assert FORKS == result["forks"]
    return result


@pytest.mark.timeout(200)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_fork_while_a_thread_hammers_a_locked_path_never_hangs_the_child(scenario: str) -> None:
    """20 forks while one thread runs the path without pause: every child works and exits."""
    result = _run(scenario)
    assert 0 == result["hangs"], result
    assert 0 == result["failures"], result


@pytest.mark.timeout(200)
def test_every_lock_held_by_another_thread_across_a_fork_is_free_in_the_child() -> None:
    """Another thread holds every lock obskit owns across 20 forks: each child finds all free."""
    result = _run("held")
    assert result["locks"] >= 30, result  # the tail sampler, lanes, store, guards, registry, ...
    assert result["locks"] == result["held"], result
    assert 0 == result["hangs"], result
    assert 0 == result["failures"], result


_MADE_DIRECTLY = re.compile(
    r"threading\.(Lock|RLock|Condition|Event|Semaphore|BoundedSemaphore)\(|"
    r"(?<![\w.])(Lock|RLock|Condition|Semaphore|BoundedSemaphore)\(|allocate_lock\("
)


def test_every_lock_obskit_makes_comes_from_obskit_locks() -> None:
    """No module makes a lock, condition, event or semaphore except through ``obskit._locks``."""
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted((SRC / "obskit").rglob("*.py"))
        if path.name != "_locks.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _MADE_DIRECTLY.search(line.split("#")[0])
    ]
    assert [] == offenders


def test_no_fork_hook_of_obskit_runs_before_the_fork() -> None:
    """obskit registers only ``after_in_child`` hooks: nothing can make ``os.fork()`` wait."""
    calls = [
        (path.name, line.strip())
        for path in sorted((SRC / "obskit").rglob("*.py"))
        for line in path.read_text().splitlines()
        if "register_at_fork(" in line
    ]
    assert calls, "obskit re-makes its locks in a child through os.register_at_fork"
    assert [] == [call for call in calls if "after_in_child" not in call[1] or "before" in call[1]]


def test_prometheus_clients_shared_file_lock_is_adopted() -> None:
    """The one lock of prometheus-client's memory-mapped values is found, to be re-made."""
    assert multiprocess._adopt_value_lock(values.MultiProcessValue())
