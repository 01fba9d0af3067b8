"""``obskit deploy mark``: record a deployment from a pipeline, never failing it.

The ``deployment.marked`` event is written to standard output as one of obskit's JSON log lines
(where the pipeline's log collection picks it up); what each destination answered goes to
standard error. The exit status is 0 even when every destination failed (a warning says so):
a marker must never stop a deploy. Only a usage error (a time that cannot be read) exits 2.
"""

from __future__ import annotations

import argparse
import math
import sys

from obskit import _times as times

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``obskit deploy`` and ``obskit deploy mark``."""
    sub = parser.add_subparsers(dest="deploy_command", metavar="SUBCOMMAND")
    mark = sub.add_parser(
        "mark",
        help="record a deployment (log event, Grafana, Sentry, Datadog)",
        description=(
            "Record a deployment as a log event and in every destination the environment "
            "configures (OBSKIT_GRAFANA_URL/OBSKIT_GRAFANA_TOKEN; SENTRY_AUTH_TOKEN/SENTRY_ORG; "
            "DD_API_KEY/DD_SITE). Exits 0 even when a destination fails."
        ),
    )
    mark.add_argument("--version", help="the version deployed (default: OBSKIT_SERVICE_VERSION)")
    mark.add_argument("--environment", help="where to (default: OBSKIT_ENVIRONMENT)")
    mark.add_argument("--service", help="the service deployed (default: OTEL_SERVICE_NAME)")
    mark.add_argument("--description", default="", help="what the deployment changes")
    mark.add_argument("--url", default="", help="a link: the pipeline run, the change log")
    mark.add_argument(
        "--revision", help="the commit deployed (default: OBSKIT_VCS_REVISION, GITHUB_SHA, ...)"
    )
    mark.add_argument("--repository-url", default="", help="the repository (Datadog's git info)")
    mark.add_argument(
        "--started",
        help="when the deployment started (default: now; e.g. an epoch from `date +%%s`)",
    )
    mark.add_argument(
        "--timeout", type=float, default=5.0, help="seconds each destination may take (default 5)"
    )
    mark.set_defaults(run=_mark)


def run(args: argparse.Namespace) -> int:
    """``obskit deploy`` without a subcommand: the usage."""
    print("usage: obskit deploy mark [--version V] [--environment E] ...", file=sys.stderr)
    return 2


def _init_logs(args: argparse.Namespace) -> None:
    """obskit's JSON log lines on stdout, nothing else wired; a bad variable only warns."""
    import obskit

    settings = {
        "service_name": args.service,
        "service_version": args.version,
        "environment": args.environment,
        "vcs_revision": args.revision,
    }
    try:
        obskit.init(
            **{k: v for k, v in settings.items() if v},
            metrics=False,
            tracing=False,
            log_format="json",
            log_stream="stdout",
            access_log=False,
        )
    except obskit.ConfigError as exc:
        print(f"obskit deploy mark: warning: {exc}; logging without obskit", file=sys.stderr)


def _mark(args: argparse.Namespace) -> int:
    try:
        started = times.parse_time(args.started) if args.started else None
    except ValueError as exc:
        print(f"obskit deploy mark: --started: {exc}", file=sys.stderr)
        return 2
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        print("obskit deploy mark: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    import obskit
    from obskit.incident.markers import mark_deploy

    _init_logs(args)
    try:
        mark = mark_deploy(
            args.version,
            args.environment,
            description=args.description,
            url=args.url,
            service=args.service,
            revision=args.revision,
            repository_url=args.repository_url,
            started=started,
            timeout=args.timeout,
        )
    finally:
        obskit.shutdown(timeout=2.0)
    print(f"obskit deploy mark: {mark.deployment.summary()}", file=sys.stderr)
    for outcome in mark.outcomes:
        state = "sent" if outcome.ok else "FAILED"
        print(
            f"  {outcome.destination:<8} {state:<6} {outcome.detail} ({outcome.seconds:.1f} s)",
            file=sys.stderr,
        )
    if not mark.outcomes:
        print("  (no destination configured: the log event only)", file=sys.stderr)
    if mark.failures:
        print(
            f"obskit deploy mark: warning: {len(mark.failures)} of {len(mark.outcomes)} "
            "destinations did not record the deployment; the deploy goes on (exit 0)",
            file=sys.stderr,
        )
    return 0
