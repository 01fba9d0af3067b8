"""``obskit incident timeline|postmortem``: what happened in a window, and its postmortem draft.

::

    obskit incident timeline --prometheus http://prometheus:9090 --from 2026-05-04T12:00:00Z \\
        --to 2026-05-04T13:00:00Z --service shop [--logs shop.log ...] [--traces spans.jsonl]
    obskit incident postmortem ... -o postmortem.md

Both print to the terminal, or write Markdown with ``-o FILE`` (``--json``: the evidence as
JSON). Exit 2 when Prometheus cannot be read or an argument is wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from obskit import _times as times

if TYPE_CHECKING:
    from obskit.incident.timeline import Timeline

__all__ = ["add_arguments", "run"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    parser.add_argument("--from", dest="start", required=True, metavar="T", help="window start")
    parser.add_argument("--to", dest="end", default="now", metavar="T", help="window end (now)")
    parser.add_argument("--service", help="the service (service_name of obskit_build_info)")
    parser.add_argument(
        "--baseline",
        metavar="DURATION",
        help="how long before --from the pre-window band is read (default: the window, >= 10m)",
    )
    parser.add_argument(
        "--step", metavar="DURATION", help="interval length (default: window/60, >= 15s)"
    )
    parser.add_argument(
        "--logs",
        nargs="+",
        default=[],
        metavar="FILE",
        help="obskit JSON log files ('-': standard input) for the first failed requests' lines",
    )
    parser.add_argument(
        "--traces", nargs="+", type=Path, default=[], metavar="FILE", help="kept-span files"
    )
    parser.add_argument("--slo", action="append", default=[], help="only these objectives")
    parser.add_argument("--exemplars", type=int, default=10, help="trace ids to list (10)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds each Prometheus query may take (30)"
    )
    parser.add_argument("-o", "--output", type=Path, help="write Markdown to FILE")
    parser.add_argument("--json", action="store_true", help="print the evidence as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``obskit incident`` and its subcommands."""
    sub = parser.add_subparsers(dest="incident_command", metavar="SUBCOMMAND")
    timeline = sub.add_parser(
        "timeline", help="what changed, what was detected, what moved, where to look"
    )
    _common(timeline)
    timeline.set_defaults(run=_timeline)
    postmortem = sub.add_parser("postmortem", help="a blameless postmortem draft from the evidence")
    _common(postmortem)
    postmortem.add_argument("--title", default="", help="the incident's title")
    postmortem.set_defaults(run=_postmortem)


def run(args: argparse.Namespace) -> int:
    """``obskit incident`` without a subcommand: the usage."""
    print("usage: obskit incident {timeline,postmortem} --prometheus URL --from T", file=sys.stderr)
    return 2


def _gather(args: argparse.Namespace) -> Timeline | int:
    """The timeline the arguments ask for, or the exit status of what went wrong."""
    from obskit._prometheus import PrometheusError
    from obskit.incident.timeline import gather

    try:
        start, end = times.parse_window(args.start, args.end)
        baseline = times.parse_duration(args.baseline) if args.baseline else None
        step = times.parse_duration(args.step) if args.step else None
    except ValueError as exc:
        print(f"obskit incident: {exc}", file=sys.stderr)
        return 2
    if args.output is not None and (args.output.is_dir() or not args.output.parent.is_dir()):
        # Said before the queries, not after them.
        print(f"obskit incident: cannot write {args.output}: not a file in a directory that "
              "exists", file=sys.stderr)  # fmt: skip
        return 2
    if args.exemplars < 0:
        print("obskit incident: --exemplars is not negative", file=sys.stderr)
        return 2
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        print("obskit incident: --timeout is a positive number of seconds", file=sys.stderr)
        return 2
    try:
        return gather(
            args.prometheus,
            start,
            end,
            service=args.service,
            baseline=baseline,
            step=step,
            logs=args.logs,
            traces=args.traces,
            slos=args.slo,
            exemplar_limit=args.exemplars,
            timeout=args.timeout,
        )
    except (PrometheusError, ValueError) as exc:
        print(f"obskit incident: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"obskit incident: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


def _emit(args: argparse.Namespace, text: str, markdown: str, data: object) -> int:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        sys.stdout.write(text)
    if args.output is not None:
        try:
            args.output.write_text(markdown, encoding="utf-8")
        except OSError as exc:
            print(f"obskit incident: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"obskit incident: wrote {args.output}", file=sys.stderr)
    return 0


def _timeline(args: argparse.Namespace) -> int:
    from obskit.incident import render

    found = _gather(args)
    if isinstance(found, int):
        return found
    return _emit(args, render.terminal(found), render.markdown(found), found.to_json())


def _postmortem(args: argparse.Namespace) -> int:
    from obskit.incident import postmortem

    found = _gather(args)
    if isinstance(found, int):
        return found
    draft = postmortem.draft(found, title=args.title)
    return _emit(args, draft, draft, {"timeline": found.to_json(), "postmortem": draft})
