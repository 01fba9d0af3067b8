"""Print pip constraints pinning obskit's dependencies to the oldest releases pyproject.toml allows.

Every requirement of ``[project].dependencies`` and of each optional extra except the test and
development ones is pinned to its lower bound (``>=1.30`` becomes ``==1.30``; an exact pin stays).
These are the libraries obskit builds on, whose internals it reads; the tools that only run the
tests (pytest, frameworks' newest releases) are left for pip to resolve around the pins.
``scripts/setup --oldest`` installs ``.venv-oldest`` with these constraints, and ``scripts/test``
runs the tests that exercise those libraries' internals there.

Run with the project's virtualenv: ``.venv/bin/python scripts/oldest_constraints.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

#: Extras that are not part of what obskit supports, only of how it is tested and developed.
TOOL_EXTRAS = frozenset({"test", "dev"})


def lowest(requirement: Requirement) -> str | None:
    """The constraint pinning one requirement to its lower bound (None: it has none)."""
    pins = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==")]
    if not pins:
        return None
    if len(pins) > 1:
        raise SystemExit(f"oldest_constraints: {requirement} has more than one lower bound")
    marker = f" ; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}=={pins[0]}{marker}"


def constraints(pyproject: dict[str, object]) -> list[str]:
    """One constraint per bounded requirement of the dependencies and the supported extras."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    name = project["name"]
    requirements = [Requirement(text) for text in project.get("dependencies", [])]
    for extra, texts in project.get("optional-dependencies", {}).items():
        if extra not in TOOL_EXTRAS:
            requirements += [Requirement(text) for text in texts]
    pins: dict[str, str] = {}
    for requirement in requirements:
        if requirement.name == name:  # an extra naming other extras of obskit itself
            continue
        pin = lowest(requirement)
        if pin is not None and pins.setdefault(requirement.name.lower(), pin) != pin:
            raise SystemExit(f"oldest_constraints: two lower bounds for {requirement.name}")
    return sorted(pins.values())


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    with (root / "pyproject.toml").open("rb") as file:
        pyproject = tomllib.load(file)
    sys.stdout.write("".join(line + "\n" for line in constraints(pyproject)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
