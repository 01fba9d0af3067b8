"""The never-raise guard: internal failures are counted, logged rarely, and swallowed."""

from __future__ import annotations

import pytest

import obskit.testing
from obskit import _guard


@pytest.fixture
def lenient() -> object:
    """The guard as users have it: not strict."""
    previous = _guard.set_strict(False)
    yield
    _guard.set_strict(previous)


def test_guarded_function_returns_default_and_counts(lenient: object) -> None:
    """A failing internal function returns its default; the failure is counted by component."""

    @_guard.guarded("unit.part", default=-1)
    def part(x: int) -> int:
        return 10 // x

    assert 5 == part(2)
    assert -1 == part(0)
    assert -1 == part(0)
    assert {"unit.part": 2} == _guard.counts()


def test_logged_at_most_once_a_minute_per_component(lenient: object) -> None:
    """Many failures of one component log one line; another component logs its own."""
    with obskit.testing.isolated() as capture:
        for _ in range(50):
            _guard.report("a", RuntimeError("x"))
        _guard.report("b", RuntimeError("y"))
        warnings = [line for line in capture.logs if line["logger"] == "obskit.internal"]
        assert 2 == len(warnings)
        assert 50 == capture.sample("obskit_internal_errors_total", {"component": "a"})
    assert "RuntimeError" == warnings[0]["exception"][0]["exc_type"]


def test_strict_mode_reraises() -> None:
    """Under obskit's own tests (strict), internal errors re-raise so they are not hidden."""

    @_guard.guarded("unit.strict", default=None)
    def part() -> None:
        raise LookupError("internal bug")

    with pytest.raises(LookupError):
        part()
