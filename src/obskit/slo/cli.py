"""``obskit slo rules|test|alertmanager|runbooks|dashboard SPEC``: write what watches the SLOs.

SPEC is a YAML file (OpenSLO v1 or ``apiVersion: obskit/v1``) or ``module:attribute`` naming
Python objectives. Each subcommand writes files (``-o``) or standard output; a declaration
obskit cannot accept fails with exit status 2 and a message naming where and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from obskit.slo.objectives import ObjectiveSet, SpecError

__all__ = ["add_arguments", "run"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a YAML file, or module:attribute")
    parser.add_argument("--runbook-base", help="URL the runbooks are published under")
    parser.add_argument("--dashboard-url", help="Grafana base URL for the alerts' dashboard link")


def _rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", help="evaluation interval of the rate and alert groups (default: global)"
    )
    parser.add_argument(
        "--dense",
        action="store_true",
        help="evaluate the tile groups at --interval too (for test servers that live minutes)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``obskit slo`` and its subcommands."""
    sub = parser.add_subparsers(dest="slo_command", metavar="SUBCOMMAND")
    rules = sub.add_parser("rules", help="write the Prometheus rule file")
    _common(rules)
    _rule_options(rules)
    rules.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    rules.set_defaults(run=_guarded(_rules))

    test = sub.add_parser("test", help="write promtool tests of the rules (and the rules)")
    _common(test)
    _rule_options(test)
    test.add_argument("-o", "--output", type=Path, required=True, help="directory to write to")
    test.add_argument("--rules-name", default="slo-rules.yml", help="the rule file's name")
    test.set_defaults(run=_guarded(_test))

    manager = sub.add_parser("alertmanager", help="write an Alertmanager config fragment")
    _common(manager)
    manager.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    manager.add_argument(
        "--receiver",
        action="append",
        default=[],
        metavar="OWNER[:SEVERITY]=NAME",
        help="receiver of an owner's alerts (default: <owner>-<severity>); repeatable",
    )
    manager.add_argument("--default-receiver", default="default", help="the root route's receiver")
    manager.set_defaults(run=_guarded(_alertmanager))

    runbooks = sub.add_parser("runbooks", help="write one Markdown runbook per objective")
    _common(runbooks)
    runbooks.add_argument("-o", "--output", type=Path, required=True, help="directory")
    runbooks.set_defaults(run=_guarded(_runbooks))

    dashboard = sub.add_parser("dashboard", help="write the Grafana dashboard JSON")
    _common(dashboard)
    dashboard.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    dashboard.add_argument("--datasource", default="prometheus", help="Prometheus datasource uid")
    dashboard.set_defaults(run=_guarded(_dashboard))


def run(args: argparse.Namespace) -> int:
    """``obskit slo`` without a subcommand: the usage."""
    print("usage: obskit slo {rules,test,alertmanager,runbooks,dashboard} SPEC", file=sys.stderr)
    return 2


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except SpecError as exc:
            print(f"obskit slo {args.slo_command}: {exc}", file=sys.stderr)
            return 2
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "obskit":
                raise
            from obskit._identity import DISTRIBUTION

            print(
                f"obskit slo {args.slo_command}: needs the package {exc.name!r}: "
                f"pip install '{DISTRIBUTION}[slo]'",
                file=sys.stderr,
            )
            return 2

    return guarded


def _load(args: argparse.Namespace) -> ObjectiveSet:
    from obskit.slo.spec import load

    sets = load(args.spec)
    changes = {}
    if args.runbook_base:
        changes["runbook_base"] = args.runbook_base
    if args.dashboard_url:
        changes["dashboard_url"] = args.dashboard_url
    return dataclasses.replace(sets, **changes) if changes else sets


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except FileExistsError:
        raise SpecError(f"cannot write {output}: {output.parent} is not a directory") from None
    except OSError as exc:
        raise SpecError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(f"wrote {output}", file=sys.stderr)


def _options(args: argparse.Namespace) -> object:
    from obskit.slo.rules import RuleOptions

    if args.interval:
        from obskit.slo.burn import parse_duration

        try:
            parse_duration(args.interval)
        except ValueError as exc:
            raise SpecError(f"--interval: {exc}") from None
    return RuleOptions(interval=args.interval, dense=args.dense)


def _rules(args: argparse.Namespace) -> int:
    from obskit.slo import rules

    _write(rules.render(_load(args), _options(args)), args.output)  # type: ignore[arg-type]
    return 0


def _test(args: argparse.Namespace) -> int:
    from obskit.slo import rules, ruletests

    sets = _load(args)
    directory: Path = args.output
    name: str = args.rules_name
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise SpecError(f"--rules-name is a file name inside -o, not {name!r}")
    _write(rules.render(sets, _options(args)), directory / name)  # type: ignore[arg-type]
    test_name = name.rsplit(".", 1)[0] + ".test.yml"
    _write(ruletests.render(sets, name), directory / test_name)
    print(f"run: promtool test rules {directory / test_name}", file=sys.stderr)
    return 0


def _alertmanager(args: argparse.Namespace) -> int:
    from obskit.slo import alertmanager

    if not args.default_receiver.strip():
        raise SpecError("--default-receiver names a receiver; it is empty")
    receivers = alertmanager.parse_receivers(args.receiver)
    text = alertmanager.render(_load(args), receivers, args.default_receiver)
    _write(text, args.output)
    return 0


def _runbooks(args: argparse.Namespace) -> int:
    from obskit.slo import runbooks

    sets = _load(args)
    for objective in sets.objectives:
        _write(runbooks.render(sets, objective), args.output / f"{objective.name}.md")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from obskit.slo import dashboard

    if not args.datasource.strip():
        raise SpecError("--datasource is the uid of a Prometheus data source; it is empty")
    _write(dashboard.render(_load(args), datasource=args.datasource), args.output)
    return 0
