"""The ``obskit`` command line.

Each subcommand lives in its own module, which declares its arguments and runs them::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

A subcommand with subcommands of its own (``obskit slo rules``) adds them with
``parser.add_subparsers`` in its ``add_arguments`` and sets ``run`` per leaf with
``set_defaults(run=...)``. Only the module of the subcommand being run is imported, so
``obskit --help`` stays fast and a command whose optional dependencies are missing says so
instead of breaking the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = ["COMMANDS", "Command", "main"]


class Command(NamedTuple):
    """A subcommand: the module that declares and runs it, and its one-line help."""

    module: str
    help: str
    # The extra to install when the module's dependencies are missing.
    extra: str | None = None


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "obskit.demo.main",
        "run the sample service, drive traffic, print the report",
        extra="demo",
    ),
    "doctor": Command(
        "obskit._doctor",
        "print the effective configuration and what is wired, for the environment or an app",
    ),
    "traces": Command("obskit._traces", "print the kept traces of the local trace file as trees"),
    "canary": Command(
        "obskit.canary.cli",
        "judge a canary against its baseline: judge (Prometheus), watch (/metrics), serve",
    ),
    "collector-config": Command(
        "obskit.tracing.collector_config",
        "print an OpenTelemetry Collector config mirroring the sampling policy",
    ),
    "deploy": Command(
        "obskit.incident.deploy_cli",
        "record a deployment: a log event, Grafana, Sentry and Datadog markers",
    ),
    "incident": Command(
        "obskit.incident.cli",
        "an incident's timeline (changes, detection, symptoms, where to look) and postmortem draft",
    ),
    "slo": Command(
        "obskit.slo.cli",
        "write SLO rules, promtool tests, Alertmanager routes, runbooks and a dashboard",
        extra="slo",
    ),
}

Runner = Callable[[argparse.Namespace], int]


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: the first argument that is not an option."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obskit", description="Logs, RED/USE metrics and tail-sampled traces, wired."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv)
    for name, command in COMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        if name == chosen:
            module = importlib.import_module(command.module)
            module.add_arguments(child)
            if child.get_default("run") is None:
                child.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``obskit`` command; returns its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = _parser(arguments)
    except ModuleNotFoundError as exc:
        command = COMMANDS[str(_chosen(arguments))]
        if not exc.name or exc.name.split(".")[0] == "obskit":
            raise
        from obskit._identity import DISTRIBUTION

        hint = f": pip install '{DISTRIBUTION}[{command.extra}]'" if command.extra else ""
        print(
            f"obskit {_chosen(arguments)}: needs the package {exc.name!r}, not installed{hint}",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(arguments)
    run: Runner | None = getattr(args, "run", None)
    if run is None:  # a command group named without one of its subcommands
        parser.parse_args([args.command, "--help"])
    assert run is not None
    return int(run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
