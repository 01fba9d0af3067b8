"""``obskit canary judge|watch|serve``: the judge on the command line.

Exit status: 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 2 a usage or configuration error or a source that
cannot be read (Prometheus or a /metrics URL unreachable, an error answer).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

__all__ = ["add_arguments", "run", "run_judge", "run_serve", "run_watch"]

USAGE_ERROR = 2
# A command group: each leaf sets its own ``run`` (see obskit.cli's docstring).
run = None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="LABEL",
        help="also compare per value of LABEL (tenant_id, feature_flag_variant); repeatable",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="false-fail bound (0.05)")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=200,
        help="fewest requests per arm and segment for a PASS (200); below: INCONCLUSIVE",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=FRACTION",
        help="allowed relative increase: errors, latency, business, saturation, dependency "
        "(e.g. errors=0.1); repeatable",
    )
    parser.add_argument(
        "--saturation-gates",
        action="store_true",
        help="let saturation and dependency checks fail the canary on their own",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--all", action="store_true", help="show every check in the table")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``judge``, ``watch`` and ``serve``."""
    sub = parser.add_subparsers(dest="canary_command", required=True, metavar="SUBCOMMAND")
    judge = sub.add_parser("judge", help="one look through Prometheus over the window since")
    judge.add_argument("--prometheus", required=True, metavar="URL")
    judge.add_argument(
        "--baseline", required=True, metavar="SELECTOR", help='{service_version="1"}'
    )
    judge.add_argument("--canary", required=True, metavar="SELECTOR")
    judge.add_argument("--since", required=True, metavar="DURATION", help="e.g. 30m")
    judge.add_argument("--step", default=None, metavar="DURATION", help="interval (since/30)")
    judge.add_argument("--timeout", type=float, default=10.0, help="per query, seconds")
    _common(judge)
    judge.set_defaults(run=run_judge)

    watch = sub.add_parser("watch", help="scrape both arms' /metrics until the test decides")
    watch.add_argument("--baseline-metrics", required=True, metavar="URL[,URL...]")
    watch.add_argument("--canary-metrics", required=True, metavar="URL[,URL...]")
    watch.add_argument("--interval", type=float, required=True, metavar="S")
    watch.add_argument("--max-duration", type=float, required=True, metavar="S")
    watch.add_argument(
        "--baseline-selector", default="", metavar="SELECTOR", help="keep matching series only"
    )
    watch.add_argument("--canary-selector", default="", metavar="SELECTOR")
    watch.add_argument("--timeout", type=float, default=10.0, help="per scrape, seconds")
    _common(watch)
    watch.set_defaults(run=run_watch)

    serve = sub.add_parser("serve", help="HTTP endpoints for Argo Rollouts and Flagger")
    serve.add_argument("--prometheus", required=True, metavar="URL")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--addr", default="127.0.0.1", help="listen address (127.0.0.1)")
    serve.add_argument("--baseline", default="", metavar="TEMPLATE", help="default selector")
    serve.add_argument("--canary", default="", metavar="TEMPLATE")
    serve.add_argument("--since", default="10m", metavar="DURATION", help="default window")
    serve.add_argument("--timeout", type=float, default=8.0, help="per query, seconds")
    _common(serve)
    serve.set_defaults(run=run_serve)


def tolerances(items: list[str]) -> dict[str, float]:
    """``["errors=0.1"]`` -> ``{"errors": 0.1}``; ValueError names a bad item."""
    from obskit.canary.checks import DEFAULT_TOLERANCES

    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in DEFAULT_TOLERANCES or not value:
            known = ", ".join(DEFAULT_TOLERANCES)
            raise ValueError(
                f"--tolerance {item!r}: use METRIC=FRACTION with METRIC one of {known}"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"--tolerance {item!r}: {value!r} is not a number") from None
    return out


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The judge keyword arguments every subcommand shares."""
    return {
        "by": list(args.by),
        "alpha": args.alpha,
        "min_requests": args.min_requests,
        "tolerances": tolerances(args.tolerance),
        "saturation_gates": args.saturation_gates,
    }


def _print(report: Any, args: argparse.Namespace) -> int:
    if args.json:
        print(report.to_json())
    else:
        print(report.table(everything=args.all))
    return int(report.exit_code)


def _fail(message: str) -> int:
    print(f"obskit canary: {message}", file=sys.stderr)
    return USAGE_ERROR


def run_judge(args: argparse.Namespace) -> int:
    """``obskit canary judge``."""
    from obskit.canary.api import judge
    from obskit.canary.sources import SourceError

    try:
        report = judge(
            args.prometheus,
            args.baseline,
            args.canary,
            args.since,
            step=args.step,
            timeout=args.timeout,
            **options(args),
        )
    except (ValueError, SourceError) as exc:
        return _fail(str(exc))
    return _print(report, args)


def run_watch(args: argparse.Namespace) -> int:
    """``obskit canary watch``."""
    from obskit.canary.api import watch
    from obskit.canary.sources import SourceError

    def progress(report: Any) -> None:
        failed = len(report.failed())
        print(
            f"look {report.looks}: {report.verdict} ({failed} failed checks)",
            file=sys.stderr,
            flush=True,
        )

    try:
        report = watch(
            _urls(args.baseline_metrics),
            _urls(args.canary_metrics),
            interval=args.interval,
            max_duration=args.max_duration,
            baseline_selector=args.baseline_selector,
            canary_selector=args.canary_selector,
            on_look=progress if sys.stderr.isatty() else None,
            timeout=args.timeout,
            **options(args),
        )
    except (ValueError, SourceError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")
    return _print(report, args)


def _urls(text: str) -> list[str]:
    urls = [part.strip() for part in text.split(",") if part.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
    return urls


def run_serve(args: argparse.Namespace) -> int:
    """``obskit canary serve``: until interrupted."""
    from obskit.canary.serve import CanaryServer, Defaults

    try:
        defaults = Defaults(
            prometheus=args.prometheus,
            baseline=args.baseline,
            canary=args.canary,
            since=args.since,
            timeout=args.timeout,
            options=options(args),
        )
        server = CanaryServer(defaults, args.port, args.addr)
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {args.addr}:{args.port}: {exc.strerror or exc}")
    # SIGTERM (what Kubernetes and systemd send) stops like Ctrl-C: no new connections, the
    # requests being judged are answered, then the port is released and the exit is 0.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: server.stop())
    print(json.dumps({"serving": server.url}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        left = server.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if left:
        print(f"obskit canary serve: stopped with {left} connection(s) unanswered", file=sys.stderr)
    return 0
