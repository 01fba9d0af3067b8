"""The command line: each subcommand declares its own arguments and is imported only when run."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types

import pytest

from conftest import subprocess_env
from obskit import cli


def test_help_lists_every_command_without_importing_them() -> None:
    """``obskit --help`` names every subcommand and imports none of their modules."""
    code = (
        "import sys\n"
        "from obskit import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m in {c.module for c in cli.COMMANDS.values()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for name in cli.COMMANDS:
        assert name in result.stdout
    assert "[]" == result.stdout.strip().splitlines()[-1]


def _fake(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "fake", cli.Command(module.__name__, "a fake", "extra"))


def test_a_command_declares_and_receives_its_own_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chosen module's ``add_arguments`` shapes the parser; its ``run`` gets the result."""
    seen: list[argparse.Namespace] = []
    module = types.ModuleType("obskit_fake_command")
    module.add_arguments = lambda parser: parser.add_argument("--count", type=int)  # type: ignore[attr-defined]
    module.run = lambda args: seen.append(args) or 7  # type: ignore[attr-defined]
    _fake(monkeypatch, module)
    assert 7 == cli.main(["fake", "--count", "3"])
    assert 3 == seen[0].count


def test_nested_subcommands_run_their_leaf(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command group sets ``run`` per leaf; naming the group alone prints its help."""
    module = types.ModuleType("obskit_fake_group")

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        leaves = parser.add_subparsers(dest="leaf")
        leaves.add_parser("one").set_defaults(run=lambda args: 11)

    module.add_arguments = add_arguments  # type: ignore[attr-defined]
    module.run = None  # type: ignore[attr-defined]
    _fake(monkeypatch, module)
    assert 11 == cli.main(["fake", "one"])
    with pytest.raises(SystemExit):
        cli.main(["fake"])
    assert "one" in capsys.readouterr().out


def test_a_missing_optional_dependency_is_named_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command whose module needs an uninstalled package says which, and the extra to add."""
    monkeypatch.setitem(cli.COMMANDS, "fake", cli.Command("obskit_not_there_at_all", "x", "demo"))
    assert 2 == cli.main(["fake"])
    err = capsys.readouterr().err
    assert "obskit_not_there_at_all" in err
    assert "[demo]" in err
