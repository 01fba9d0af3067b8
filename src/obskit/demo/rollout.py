"""The demo's rollout: steady state, a canary deploy, the judge every interval, the rollback.

The fleet is ``inventory`` and two replicas of the shop at v1 (``shop-1``, ``shop-2``). While
traffic arrives at a fixed rate, every ``interval`` the recorder scrapes each live shop, writes
the exposition to ``scrapes/`` (the run's metrics snapshots, indexed in ``scrapes.jsonl``) and
feeds the judge of the current phase from those very texts:

1. **steady**: shop-1 against shop-2, both v1 — an A/A comparison, which must never fail;
2. **canary**: the deploy is marked and v2 (``shop-canary``) started beside them; once it
   answers it takes a third of the traffic and is judged against the v1 replicas until the
   judge says FAIL three times in a row, naming a tenant (six without; or the canary's time
   runs out);
3. **rollback**: the canary's share goes back to v1, v2 is stopped, and the v1 replicas are
   judged A/A again while the tenant recovers.

v2's regression is real: for one tenant its checkouts (four orders each, placed at once) use a
pool of one connection where v1 has ten, so that tenant's orders wait on the pool; nothing fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from obskit.canary.api import plan as check_plan
from obskit.canary.checks import needed
from obskit.canary.judge import Judge, JudgeOptions
from obskit.canary.report import Report
from obskit.canary.sources import ScrapeSource
from obskit.demo import processes, traffic
from obskit.demo.processes import Service

__all__ = ["Story", "StoryResult", "run_story"]

BASELINE_VERSION, CANARY_VERSION = "1.0.0", "2.0.0"
JUDGE_BY = ("tenant_id",)


@dataclasses.dataclass(frozen=True)
class Story:
    """The story's timing, load and injected regression."""

    rate: float = 28.0
    interval: float = 1.0
    steady_s: float = 10.0
    canary_max_s: float = 40.0
    recovery_s: float = 15.0
    marker_lead_s: float = 3.0
    tenant: str = "initech"
    # Each of the tenant's orders holds a connection 150 ms, and its checkouts place four orders
    # at once: v1's pool of ten takes them side by side, v2's single connection one after
    # another (0.6 s of pool per checkout, whatever the client's timing), about half busy at
    # the demo's rate: far above a loaded machine's noise, with no pool timeout (no error).
    pool_hold_ms: int = 150
    baseline_pool: int = 10
    canary_pool: int = 1
    # Requests per arm before the judge may PASS: more than this regression of one tenant in
    # five needs to show (so the canary is not passed before its evidence is in).
    min_requests: int = 150
    # As Argo Rollouts' failureLimit: the rollout aborts at this many FAIL looks in a row.
    fail_looks: int = 3
    max_requests: int = 100_000

    def shop_args(self, inventory: str, db: Path, pool: int) -> list[str]:
        """A shop's options: its dependency, its database and the tenant's pool."""
        pool_option = f"{self.tenant}:{pool}:{self.pool_hold_ms}"
        return ["--inventory", inventory, "--db", str(db), "--tenant-pool", pool_option]


@dataclasses.dataclass
class StoryResult:
    """What the rollout did, with the times (seconds since the epoch) of each step."""

    started: float
    deployed: float | None
    rolled_back: float | None
    finished: float
    outcomes: list[traffic.Outcome]
    looks: list[dict[str, Any]]
    services: dict[str, Service]
    capped: bool


class _Phase:
    """One judge over fixed arms, fed from the recorder's texts."""

    def __init__(self, name: str, baseline: list[str], canary: list[str], story: Story) -> None:
        self.name, self.baseline, self.canary = name, baseline, canary
        specs = check_plan(by=JUDGE_BY)
        self.engine = Judge(specs, JudgeOptions(min_requests=story.min_requests, by=JUDGE_BY))
        self.texts: dict[str, str] = {}
        wanted = needed(specs)
        self.families = tuple(
            {q.sample.removesuffix("_bucket").removesuffix("_count") for q, _ in wanted}
        )
        self.source = ScrapeSource(baseline, canary, wanted, reader=self._read)
        self.report: Report | None = None

    def _read(self, name: str) -> bytes:
        # Only the families the checks read: parsing the whole exposition costs the most.
        keep = self.families
        lines = [
            line
            for line in self.texts[name].splitlines()
            if line.startswith(keep) or (line.startswith("# ") and line[7:].startswith(keep))
        ]
        return ("\n".join(lines) + "\n").encode()

    def feed(self, texts: dict[str, str]) -> Report | None:
        """One look: the increases since the previous texts; None on the first."""
        self.texts = texts
        counts = self.source.scrape()
        if counts is None:
            return None
        self.engine.observe(*counts)
        self.report = self.engine.report(
            {"phase": self.name, "baseline": self.baseline, "canary": self.canary}
        )
        return self.report


class _Recorder:
    """Scrapes the live shops every interval, writes the snapshots, feeds the phase's judge."""

    def __init__(self, out: Path, started: float) -> None:
        self.dir = out / "scrapes"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = (out / "scrapes.jsonl").open("w", encoding="utf-8")
        self.judge_log = (out / "judge.jsonl").open("w", encoding="utf-8")
        self.out = out
        self.started = started
        self.seq = 0
        self.looks: list[dict[str, Any]] = []

    def record(
        self, shops: dict[str, tuple[str, str]], phase: _Phase | None
    ) -> dict[str, Any] | None:
        self.seq += 1
        texts: dict[str, str] = {}
        taken = time.time()
        for name, (url, version) in shops.items():
            try:
                texts[name] = processes.scrape_url(url)
            except OSError:
                continue
            path = self.dir / f"{self.seq:04d}-{name}.txt"
            path.write_text(texts[name], encoding="utf-8")
            row = {
                "seq": self.seq,
                "at": round(taken, 3),
                "t": round(taken - self.started, 3),
                "instance": name,
                "version": version,
                "phase": phase.name if phase else "",
                "file": str(path.relative_to(self.out)),
            }
            self.index.write(json.dumps(row, sort_keys=True) + "\n")
        self.index.flush()
        if phase is None or not all(n in texts for n in (*phase.baseline, *phase.canary)):
            return None
        report = phase.feed({n: texts[n] for n in (*phase.baseline, *phase.canary)})
        if report is None:
            return None
        look = {
            "phase": phase.name,
            "look": report.looks,
            "seq": self.seq,
            "at": round(taken, 3),
            "t": round(taken - self.started, 3),
            "verdict": report.verdict,
            "reasons": report.reasons,
            # The tenants whose own gate checks failed (a segment's evidence may come a few
            # looks after the aggregate's).
            "tenants": sorted(
                {
                    c.segment["tenant_id"]
                    for c in report.checks
                    if c.role == "gate" and c.decision == "FAIL" and "tenant_id" in c.segment
                }
            ),
        }
        self.looks.append(look)
        self.judge_log.write(json.dumps(look, sort_keys=True) + "\n")
        self.judge_log.flush()
        (self.out / f"judge-{phase.name}.json").write_text(report.to_json(), encoding="utf-8")
        return look

    def close(self) -> None:
        self.index.close()
        self.judge_log.close()


# The recorder lives in a process of its own: parsing expositions and judging every interval
# would otherwise take the interpreter from the traffic it is measuring.
_WORKER: dict[str, Any] = {}


def _worker_open(out: Path, started: float, story: Story) -> None:
    _WORKER.update(recorder=_Recorder(out, started), story=story, phase=None)


def _worker_record(
    shops: dict[str, tuple[str, str]], arms: tuple[str, list[str], list[str]] | None
) -> dict[str, Any] | None:
    phase = _WORKER["phase"]
    if arms is not None and (phase is None or phase.name != arms[0]):
        phase = _WORKER["phase"] = _Phase(*arms, _WORKER["story"])
    recorder: _Recorder = _WORKER["recorder"]
    return recorder.record(shops, phase if arms is not None else None)


def _worker_close() -> list[dict[str, Any]]:
    recorder: _Recorder = _WORKER["recorder"]
    recorder.close()
    return recorder.looks


def _mark_deploy(out: Path, at: float) -> None:
    """``obskit deploy mark`` as a pipeline would run it; its log line goes to deploys.log."""
    command = [sys.executable, "-m", "obskit.cli", "deploy", "mark", "--version", CANARY_VERSION]
    command += ["--environment", "demo", "--service", "shop", "--description"]
    command += ["shop-canary: v2 beside v1, a third of the traffic", "--started", f"{at:.3f}"]
    env = {**processes.child_env(), "OBSKIT_LOG_FORMAT": "json", "OBSKIT_LOG_STREAM": "stdout"}
    with (out / "deploys.log").open("ab") as log:
        subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=60, check=False
        )


async def _story(out: Path, story: Story, services: dict[str, Service], say: Any) -> StoryResult:
    inventory = processes.start("inventory", "inventory", out, [])
    services["inventory"] = inventory
    for name in ("shop-1", "shop-2"):
        args = story.shop_args(inventory.url, out / f"orders-{name}.db", story.baseline_pool)
        services[name] = processes.start(name, "shop", out, args, BASELINE_VERSION)
    for service in list(services.values()):
        await asyncio.to_thread(processes.wait_ready, service)

    started = time.time()
    loop = asyncio.get_running_loop()
    worker = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("fork")
    )
    await loop.run_in_executor(worker, _worker_open, out, started, story)

    def targets(names: Iterable[str]) -> dict[str, tuple[str, str]]:
        return {n: (services[n].metrics_url, services[n].version) for n in names}

    async def record(
        names: Iterable[str], arms: tuple[str, list[str], list[str]] | None
    ) -> dict[str, Any] | None:
        look: dict[str, Any] | None = await loop.run_in_executor(
            worker, _worker_record, targets(names), arms
        )
        return look

    shops = {n: services[n] for n in ("shop-1", "shop-2")}
    router = traffic.Router({n: s.url for n, s in shops.items()}, {"shop-1": 1, "shop-2": 1})
    stop = asyncio.Event()
    planned = traffic.plan(story.max_requests)
    total = story.steady_s + story.canary_max_s + story.recovery_s + 30
    sender = asyncio.create_task(
        traffic.drive_open(router, planned, story.rate, stop, deadline_s=total)
    )
    phase: tuple[str, list[str], list[str]] | None = ("steady", ["shop-1"], ["shop-2"])
    deployed = rolled_back = None
    marking: asyncio.Task[None] | None = None
    canary: Service | None = None
    ready: asyncio.Task[None] | None = None
    failing, named = 0, False
    say(
        f"steady state: v1 on shop-1 and shop-2, {story.rate:g} requests/s from "
        f"{len(traffic.TENANTS)} tenants; the judge compares the two replicas (A/A)"
    )
    tick = time.monotonic()
    while not sender.done():
        tick += story.interval
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        now = time.time() - started
        report = await record(shops, phase)
        if report is not None:
            say(f"  t={now:5.1f}s  judge ({report['phase']}): {report['verdict']}")
        if marking is None and now >= story.steady_s - story.marker_lead_s:
            # As a pipeline does: mark the deploy and start v2's process beside v1 (no traffic
            # yet), then give it its share once it answers. Both begin a little before the
            # steady state ends: Python start-ups take seconds on a busy machine.
            marking = asyncio.create_task(asyncio.to_thread(_mark_deploy, out, time.time()))
            args = story.shop_args(inventory.url, out / "orders-canary.db", story.canary_pool)
            canary = services["shop-canary"] = processes.start(
                "shop-canary", "shop", out, args, CANARY_VERSION
            )
            ready = asyncio.create_task(asyncio.to_thread(processes.wait_ready, canary))
        if (
            deployed is None
            and canary is not None
            and marking is not None
            and ready is not None
            and marking.done()
            and ready.done()
            and now >= story.steady_s
        ):
            marking.result()
            ready.result()
            deployed = time.time()
            shops["shop-canary"] = canary
            router.set({"shop-1": 1, "shop-2": 1, "shop-canary": 1}, {"shop-canary": canary.url})
            phase = ("canary", ["shop-1", "shop-2"], ["shop-canary"])
            say(f"deploy: v2 on shop-canary takes a third of the traffic (t={now:.1f}s)")
            continue
        if report is not None and report["phase"] == "canary":
            failing = failing + 1 if report["verdict"] == "FAIL" else 0
            named = bool(report["tenants"])
        # As Argo's failureLimit: FAIL looks in a row abort the rollout; a few more are allowed
        # while the judge has not yet named the tenant (its segment's evidence comes later).
        enough = failing >= story.fail_looks and (named or failing >= 2 * story.fail_looks)
        canary_done = (
            deployed is not None
            and rolled_back is None
            and (enough or time.time() - deployed >= story.canary_max_s)
        )
        if canary_done:
            say(f"rollback: v2 stopped, its share back to v1 (t={now:.1f}s)")
            router.set({"shop-1": 1, "shop-2": 1})
            await router.drained("shop-canary", 10.0)
            # The canary's last requests, answered after it left the pool: one more look.
            await record(("shop-1", "shop-2", "shop-canary"), phase)
            if canary is not None:
                await asyncio.to_thread(processes.stop, canary)
            shops.pop("shop-canary", None)
            rolled_back = time.time()
            phase = ("rollback", ["shop-1"], ["shop-2"])
        if rolled_back is not None and time.time() - rolled_back >= story.recovery_s:
            stop.set()
    outcomes = await sender
    capped = rolled_back is None or time.time() - rolled_back < story.recovery_s - 1
    await record(shops, None)
    looks = await loop.run_in_executor(worker, _worker_close)
    worker.shutdown()
    return StoryResult(
        started, deployed, rolled_back, time.time(), outcomes, looks, services, capped
    )


def run_story(out: Path, story: Story, services: dict[str, Service], say: Any) -> StoryResult:
    """Run the rollout; every service started is in ``services``, left running for the caller
    to stop (also when this raises)."""
    return asyncio.run(_story(out, story, services, say))
