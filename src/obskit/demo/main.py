"""``obskit demo``: the incident loop on loopback, in about a minute, ending in a report.

Steady state (v1 serves mixed traffic from five tenants), a change (v2 deployed as a canary,
with a deploy marker), detection (the canary judge every interval), the path (kept traces and
log lines), mitigation (the rollback) and the guardrail it suggests — see
:mod:`obskit.demo.rollout` for the run and :mod:`obskit.demo.report` for the figures. Nothing
leaves the machine: kept spans go to each service's local JSON-lines sink in the artifacts
directory, logs to a file per service.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from obskit._terminal import Style
from obskit.demo import aftermath, processes, render, report, rollout
from obskit.demo.processes import Service

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``obskit demo``'s options."""
    parser.add_argument("--serve", action="store_true", help="keep serving after the report")
    parser.add_argument(
        "--requests", type=int, default=None, help="stop the story after this many requests"
    )
    parser.add_argument("--out", default=None, help="directory for the artifacts")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit code."""
    try:
        import httpx  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from obskit._identity import DISTRIBUTION

        print(f"obskit demo needs the demo extra: pip install '{DISTRIBUTION}[demo]' ({exc})")
        return 2
    story = rollout.Story()
    if args.requests is not None:
        if not 1 <= args.requests <= 100_000:
            print("obskit demo: --requests must be between 1 and 100000")
            return 2
        story = dataclasses.replace(story, max_requests=args.requests)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="obskit-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    style = Style.for_stream(sys.stdout)

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    say(f"obskit demo: inventory, shop v1 x2 and the v2 canary on 127.0.0.1 (artifacts in {out})")
    services: dict[str, Service] = {}
    try:
        result = rollout.run_story(out, story, services, say)
        _write_jsonl(out / "requests.jsonl", [dataclasses.asdict(o) for o in result.outcomes])
        time.sleep(0.5)  # root spans end when the response is sent: the export lanes catch up
        (out / "inventory-metrics.txt").write_text(processes.scrape(services["inventory"]))
        if not args.serve:
            for service in reversed(list(services.values())):
                processes.stop(service)  # SIGTERM: obskit.shutdown() flushes every trace
        facts = {
            **dataclasses.asdict(story),
            "baseline_version": rollout.BASELINE_VERSION,
            "canary_version": rollout.CANARY_VERSION,
            "capped": result.capped,
        }
        times = {
            "started": result.started,
            "deployed": result.deployed,
            "rolled_back": result.rolled_back,
            "finished": result.finished,
        }
        figures = report.build(out, result.outcomes, times, facts)
        figures["aftermath"] = aftermath.run(out, story.interval, times)
        written = json.dumps(figures, indent=2, sort_keys=True)
        (out / "report.json").write_text(written)
        # The text is rendered from the JSON as written: nothing in it comes from elsewhere.
        print(written if args.json else render.render(json.loads(written), style))
        if args.serve:
            shop = services["shop-1"]
            for name in ("shop-2", "shop-canary"):
                if name in services:
                    processes.stop(services[name])
            print(
                f"\nserving: shop metrics at {shop.url}/metrics/, inventory's at "
                f"{services['inventory'].url}/metrics/ (the objective's rules for a Prometheus: "
                f"{out / 'slo-rules.yml'}) — Ctrl-C to stop",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                signal.signal(signal.SIGTERM, _raise_interrupt)
                while shop.running and services["inventory"].running:
                    time.sleep(0.5)
    finally:
        for service in reversed(list(services.values())):
            processes.stop(service)
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
