"""``obskit doctor``: initialise from the environment and print what obskit would do."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``obskit doctor`` takes no options yet."""


def run(args: argparse.Namespace) -> int:
    """Print the effective configuration and what is wired, as JSON; 2 on a bad setting."""
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
