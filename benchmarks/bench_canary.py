"""The canary judge against Kayenta's method on the same simulated data; then its cost.

Usage: ``.venv/bin/python benchmarks/bench_canary.py`` (about 3 minutes; ``--quick`` for a
short smoke run).

Part 1, power and false fails. Each run simulates a rollout of up to ``LOOKS`` intervals of
``REQUESTS`` requests each (a quarter to the canary), errors at a 1% base rate and log-normal
latencies (median 80 ms). After every interval both judges are asked:

* obskit's judge (error rate, p95, p99 on counts; alpha 0.05, default tolerances);
* a Mann-Whitney judge on ratio series, Kayenta's method: each arm's per-interval error rate and
  per-interval p99 (from the buckets, as ``histogram_quantile`` would) form two series; a
  one-sided Mann-Whitney U test (normal approximation, ties corrected) at alpha 0.05 fails the
  canary when its series is higher (from the third interval on).

Scenarios: A/A (false-fail rate: a run fails if any look fails), 2x errors, +30% p99 (latencies
scaled by 1.3). Reported: the share of runs failed and the median look of the first failure.

Part 2, cost of one look over an hour (30 intervals of 2 minutes, the default step) for 50
tenants x 20 routes, from a stand-in Prometheus on loopback (its own process) that answers each
range query with series for every label combination its ``by (...)`` clause asks for: the
number of queries (with 5 and with 50 tenants: it must not change), the wall time of
``obskit.canary.judge`` and its CPU time (HTTP, JSON, the tests).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import re
import socket
import statistics
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from canary_sim import LES, Behaviour, draw_cell, interval, lognormal_buckets
from obskit.canary import judge
from obskit.canary.checks import standard_checks
from obskit.canary.judge import Judge, JudgeOptions, _quantile

RUNS = 400
LOOKS = 60
REQUESTS = 1000
CANARY_SHARE = 0.25
ALPHA = 0.05


# --- Kayenta's method: Mann-Whitney U on per-interval series ----------------------------------


def mann_whitney_greater(canary: list[float], baseline: list[float]) -> float:
    """One-sided p-value that ``canary`` tends to be larger (normal approximation, ties)."""
    n1, n2 = len(canary), len(baseline)
    pooled = sorted([(v, 0) for v in canary] + [(v, 1) for v in baseline])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        size = j - i + 1
        ties += size**3 - size
        i = j + 1
    r1 = sum(rank for rank, (_, arm) in zip(ranks, pooled, strict=True) if arm == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u1 - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


class Kayenta:
    """Per-interval error-rate and p99 series of both arms, compared by Mann-Whitney."""

    def __init__(self) -> None:
        self.series: dict[str, list[list[float]]] = {"errors": [[], []], "p99": [[], []]}

    def observe(self, cells: list[tuple[int, int, list[int]]]) -> None:
        for arm, (n, errors, cumulative) in enumerate(cells):
            self.series["errors"][arm].append(errors / n if n else 0.0)
            quantile = _quantile(dict(zip(LES, map(float, cumulative), strict=True)), 0.99)
            self.series["p99"][arm].append(quantile or 0.0)

    def failed(self) -> bool:
        if len(self.series["errors"][0]) < 3:
            return False
        return any(mann_whitney_greater(c, b) < ALPHA for c, b in self.series.values())


# --- part 1 --------------------------------------------------------------------------------------


def scenario(
    name: str, canary: Behaviour, baseline: Behaviour, runs: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    specs = [s for s in standard_checks(resources=False) if s.metric != "business failure rate"]
    results: dict[str, list[int | None]] = {"obskit": [], "kayenta": []}
    for _ in range(runs):
        ours = Judge(specs, JudgeOptions(alpha=ALPHA))
        theirs = Kayenta()
        first: dict[str, int | None] = {"obskit": None, "kayenta": None}
        for look in range(1, LOOKS + 1):
            n_c = int(REQUESTS * CANARY_SHARE)
            c = draw_cell(rng, n_c, canary)
            b = draw_cell(rng, REQUESTS - n_c, baseline)
            ours.observe(interval(specs, {("/", ""): c}), interval(specs, {("/", ""): b}))
            theirs.observe([c, b])
            if first["obskit"] is None and ours.report().verdict == "FAIL":
                first["obskit"] = look
            if first["kayenta"] is None and theirs.failed():
                first["kayenta"] = look
            if all(v is not None for v in first.values()):
                break
        for judge_name, look_failed in first.items():
            results[judge_name].append(look_failed)
    row: dict[str, Any] = {"scenario": name}
    for judge_name, looks in results.items():
        hits = [look for look in looks if look is not None]
        row[judge_name] = (len(hits) / len(looks), statistics.median(hits) if hits else None)
    return row


def part1(runs: int) -> None:
    base_latency = lognormal_buckets(0.08, 0.5)
    slower = lognormal_buckets(0.08 * 1.3, 0.5)
    normal = Behaviour(0.01, base_latency)
    rows = [
        scenario("A/A (false fails)", normal, normal, runs, 1),
        scenario("2x errors at 1%", Behaviour(0.02, base_latency), normal, runs, 2),
        scenario("+30% p99", Behaviour(0.01, slower), normal, runs, 3),
    ]
    print(
        f"Part 1: {runs} runs per scenario, up to {LOOKS} looks of {REQUESTS} requests "
        f"({CANARY_SHARE:.0%} canary), alpha {ALPHA}"
    )
    header = ("scenario", "obskit: failed", "median look", "Kayenta MW: failed", "median look")
    print(f"{header[0]:<20} {header[1]:>15} {header[2]:>12} {header[3]:>19} {header[4]:>12}")
    for row in rows:
        ours, theirs = row["obskit"], row["kayenta"]
        print(
            f"{row['scenario']:<20} {ours[0]:>15.1%} {_look(ours[1]):>12} "
            f"{theirs[0]:>19.1%} {_look(theirs[1]):>12}"
        )


def _look(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


# --- part 2 --------------------------------------------------------------------------------------

_BY = re.compile(r"sum by \(([^)]*)\)")


class _Stand(BaseHTTPRequestHandler):
    tenants = 50
    routes = 20
    queries = 0

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        type(self).queries += 1
        query = params["query"][0]
        start, end, step = (float(params[k][0]) for k in ("start", "end", "step"))
        steps = int((end - start) / step) + 1
        labels = [name.strip() for name in _BY.match(query).group(1).split(",")]  # type: ignore[union-attr]
        values: dict[str, list[str]] = {
            "job": ["shop"],
            "instance": ["a:80", "b:80"],
            "http_route": [f"/r{n}" for n in range(self.routes)],
            "tenant_id": [f"t{n}" for n in range(self.tenants)],
            "le": LES,
        }
        combos: list[dict[str, str]] = [{}]
        for name in labels:
            options = values.get(name, [""])
            combos = [{**combo, name: option} for combo in combos for option in options]
        result = []
        errors = 'error_type!=""' in query
        for combo in combos:
            le = combo.get("le")
            share = 1.0 if le in (None, "+Inf") else min(1.0, 0.2 + LES.index(le) * 0.06)
            per_step = (2.0 if errors else 100.0) * share
            series = [[start + i * step, str(round(per_step * i))] for i in range(steps)]
            result.append({"metric": combo, "values": series})
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
        payload = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _serve(port: int, tenants: int) -> None:
    handler = type("Stand", (_Stand,), {"tenants": tenants, "queries": 0})
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


def part2() -> None:
    print("\nPart 2: one look over 1 h (30 intervals, the default step), 20 routes, by tenant_id")
    print("(a stand-in Prometheus in its own process; the judge's CPU time beside the wall time)")
    print(f"{'tenants':>8} {'queries':>8} {'checks':>12} {'wall s':>8} {'judge CPU s':>12}")
    for tenants in (5, 50):
        port = _free_port()
        server = multiprocessing.Process(target=_serve, args=(port, tenants), daemon=True)
        server.start()
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(port)
            walls, cpus, report = [], [], None
            for _ in range(3):
                wall, cpu = time.perf_counter(), time.process_time()
                report = judge(url, '{v="1"}', '{v="2"}', "1h", step="120s", by=["tenant_id"])
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        finally:
            server.terminate()
            server.join(timeout=10)
        assert report is not None
        queries = report.meta["queries"]
        series = len(report.checks)
        print(
            f"{tenants:>8} {queries:>8} {series:>12} {statistics.median(walls):>8.2f} "
            f"{statistics.median(cpus):>12.2f}"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the stand-in Prometheus did not start")


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"obskit canary judge benchmark{' (quick)' if quick else ''}")
    part1(40 if quick else RUNS)
    part2()


if __name__ == "__main__":
    main()
