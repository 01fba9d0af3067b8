"""``obskit traces [FILE]``: the kept traces of the local trace file, as trees with durations.

Without an endpoint obskit writes every kept trace to a local JSON-lines file (the path is
logged at ``init()``; ``obskit doctor`` names it). This command reads it — and its rotated
predecessor ``FILE.1`` — and prints each trace as a waterfall, newest first, filtered by trace id,
route, sampling rule or time. Without ``FILE`` it reads the file the current environment's
settings point at (``OBSKIT_TRACE_SINK``, else the default file of ``OTEL_SERVICE_NAME``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import glob
import os
import re
import sys
import tempfile

from obskit._terminal import Style, waterfall
from obskit._tracefile import Trace, bars, group, ordered, read_spans, sink_files

__all__ = ["add_arguments", "parse_when", "run", "select"]

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``obskit traces [FILE] [--trace-id ID] [--route R] [--rule R] [--since T] [--until T]``."""
    parser.add_argument(
        "file", nargs="?", metavar="FILE", help="the trace file (default: the configured one)"
    )
    parser.add_argument("--trace-id", help="only the trace whose id starts with this")
    parser.add_argument(
        "--route", help="only traces with a span of this http.route (wildcards: '/orders/*')"
    )
    parser.add_argument("--rule", help="only traces kept by this rule (error, slow, baseline, ...)")
    parser.add_argument(
        "--since", type=parse_when, help="only traces started since: 15m, 2h, 1d ago, or ISO time"
    )
    parser.add_argument("--until", type=parse_when, help="only traces started before this")
    parser.add_argument(
        "--limit", type=int, default=20, help="show at most this many (default 20; 0: all)"
    )


def parse_when(text: str) -> float:
    """A point in time as seconds since the epoch: ``<n>s|m|h|d`` ago or an ISO 8601 time."""
    match = _AGO.fullmatch(text.strip())
    if match:
        return dt.datetime.now(dt.timezone.utc).timestamp() - float(match[1]) * _UNIT_S[match[2]]
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration ago (30s, 15m, 2h, 1d) nor an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def select(traces: dict[str, Trace], args: argparse.Namespace) -> list[Trace]:
    """The traces matching every filter given, newest first."""
    chosen = []
    for trace in traces.values():
        if args.trace_id and not trace.trace_id.startswith(args.trace_id.lower()):
            continue
        if args.route and not any(fnmatch.fnmatchcase(r, args.route) for r in trace.routes()):
            continue
        if args.rule and trace.rule != args.rule:
            continue
        started = trace.start_ns / 1e9
        if args.since is not None and started < args.since:
            continue
        if args.until is not None and started >= args.until:
            continue
        chosen.append(trace)
    chosen.sort(key=lambda t: t.start_ns, reverse=True)
    return chosen


def _heading(trace: Trace) -> str:
    # The route and status of the outermost span that has one (the SERVER span, usually).
    attrs = next(
        (a for _, s in ordered(trace.spans) if "http.route" in (a := s.get("attributes") or {})),
        trace.root.get("attributes") or {},
    )
    started = dt.datetime.fromtimestamp(trace.start_ns / 1e9, dt.timezone.utc)
    parts = [
        f"trace {trace.trace_id}",
        started.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC",
        f"{trace.duration_ms:.1f} ms",
        f"kept: {trace.rule}",
        f"{len(trace.spans)} span{'s' if len(trace.spans) != 1 else ''}",
    ]
    route = attrs.get("http.route")
    if route is not None:
        parts.append(f"route {route}")
    status = attrs.get("http.response.status_code")
    if status is not None:
        parts.append(f"status {status}")
    if trace.failed():
        parts.append("ERROR")
    return "  ".join(parts)


def _candidates() -> list[str]:
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), "obskit-*-traces.jsonl")))


def run(args: argparse.Namespace) -> int:
    """Print the selected kept traces; 2 when there is no trace file to read."""
    from obskit._config import ConfigError
    from obskit._tracefile import default_path

    try:
        path = args.file or default_path()
    except ConfigError as exc:
        print(f"obskit traces: {exc}", file=sys.stderr)
        return 2
    files = sink_files(path)
    if not files:
        others = [c for c in _candidates() if c != path]
        hint = ("; trace files here: " + ", ".join(others)) if others else ""
        print(f"obskit traces: no trace file {path}{hint}", file=sys.stderr)
        return 2
    spans, skipped = read_spans(files)
    traces = group(spans)
    chosen = select(traces, args)
    shown = chosen if args.limit <= 0 else chosen[: args.limit]
    style = Style.for_stream(sys.stdout)
    where = " + ".join(str(f) for f in files)
    print(
        f"{len(traces)} kept traces in {where}; {len(chosen)} match, "
        f"showing {len(shown)}, newest first"
        + (f" ({skipped} unreadable lines skipped)" if skipped else "")
    )
    for trace in shown:
        print(style.heading(_heading(trace)))
        print(waterfall(bars(trace.spans, mark_errors=not style.enabled), style=style))
    return 0
