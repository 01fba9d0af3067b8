"""The ``obskit`` command line: ``demo``, ``doctor`` and ``collector-config``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]

# subcommand -> "module:function" taking the parsed arguments and returning an exit code;
# imported only when that subcommand runs.
_COMMANDS = {
    "demo": ("obskit.demo.main:run", "run the sample service, drive traffic, print the report"),
    "doctor": ("obskit.cli:doctor", "print the effective configuration and what is wired"),
    "collector-config": (
        "obskit.tracing.collector_config:run",
        "print an OpenTelemetry Collector config mirroring the sampling policy",
    ),
}


def doctor(args: argparse.Namespace) -> int:
    """Initialise from the environment and print what obskit would do, as JSON."""
    import obskit

    try:
        obskit.init(log_stream="stderr")
    except obskit.ConfigError as exc:
        print(f"obskit doctor: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(obskit.doctor(), indent=2, default=str, sort_keys=True))
    finally:
        obskit.shutdown(timeout=2.0)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obskit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_target, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == "demo":
            command.add_argument("--serve", action="store_true", help="serve after the report")
            command.add_argument("--requests", type=int, default=None, help="requests to send")
            command.add_argument("--out", default=None, help="directory for the artifacts")
        if name == "collector-config":
            command.add_argument("--format", choices=["yaml", "json"], default="yaml")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``obskit`` command."""
    args = _parser().parse_args(argv)
    module_name, _, function = _COMMANDS[args.command][0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not exc.name or not module_name.startswith(exc.name):
            raise
        print(f"obskit {args.command}: not available in this build", file=sys.stderr)
        return 2
    return int(getattr(module, function)(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
