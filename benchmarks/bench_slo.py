"""SLO rules: evaluation cost in a real Prometheus, obskit's rule shape against Sloth's.

50 objectives (availability of one route each) x 20 tenants, in four rule sets:

- ``obskit``: ``obskit slo rules`` for the objectives (raw counters read once over 5m; longer
  windows from recorded 5-minute and hourly tiles);
- ``obskit/tenant``: the same with ``by_tenant`` (every window per tenant);
- ``sloth`` and ``sloth/tenant``: the shape Sloth generates for the same objectives — each
  window's ratio from the raw counters (``sum(rate(errors[W])) / sum(rate(total[W]))`` for
  5m, 30m, 1h, 2h, 6h, 1d, 3d), the period's SLI as the mean of the 5-minute ratios over 30
  days, and the same multiwindow alerts; ``/tenant`` adds ``by (tenant_id)``.

History is backfilled with ``promtool tsdb create-blocks-from openmetrics``: the raw counters
(one series per route, tenant and status, scraped every minute) and the recorded series each
shape reads over long ranges (obskit's tiles, Sloth's 5-minute ratio), ``--days`` of it (3 by
default: the longest alert window; both shapes' 30-day reads then see 3 days, which favours
Sloth, whose period read grows with every day and ours with every hour). Each rule set then
runs alone in a fresh Prometheus over a copy of that data, every group every ``--interval``;
the figures are medians of ``prometheus_rule_group_last_duration_seconds`` summed over the
set's groups, and per second of wall time at the intervals the groups have in production
(obskit: rates and alerts at the evaluation interval, tiles every 5m and 1h; Sloth: all at the
evaluation interval). Series: what the rules record.

    .venv/bin/python benchmarks/bench_slo.py                      # about 5 minutes
    .venv/bin/python benchmarks/bench_slo.py --days 1 --rounds 4  # a quicker look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from obskit import slo
from obskit._yaml import dump
from obskit.slo import rules

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from prometheus_support import free_port  # noqa: E402

METRIC = "http_server_request_duration_seconds_count"
SCRAPE = 60  # seconds between raw samples in the backfilled history
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
TIERS = (("1h", "5m", "14.4", "page"), ("6h", "30m", "6", "page"),
         ("1d", "2h", "3", "ticket"), ("3d", "6h", "1", "ticket"))  # fmt: skip


def objectives(count: int, by_tenant: bool) -> slo.ObjectiveSet:
    """One availability objective per route ``/r00`` ... of the job ``shop``."""
    return slo.ObjectiveSet(
        tuple(
            slo.Objective(
                name=f"route-{k:02d}",
                indicator=slo.HttpAvailability(routes=(f"/r{k:02d}",)),
                target="99.9%",
                owner="team",
                by_tenant=by_tenant,
                where={"job": "shop"},
            )
            for k in range(count)
        ),
        service="shop",
        saturation=False,
    )


def sloth_rules(count: int, by_tenant: bool) -> dict[str, Any]:
    """Sloth's rule shape for the same objectives (its generator's recording and alert rules)."""
    by = " by (tenant_id)" if by_tenant else ""
    groups = []
    for k in range(count):
        name, route = f"route-{k:02d}", f"/r{k:02d}"
        base = f'job="shop",http_route="{route}"'
        labels = {"sloth_id": f"shop-{name}", "sloth_service": "shop", "sloth_slo": name}
        recordings = []
        for window in WINDOWS:
            errors = f'sum{by} (rate({METRIC}{{{base},error_type!=""}}[{window}]))'
            total = f"sum{by} (rate({METRIC}{{{base}}}[{window}]))"
            recordings.append(
                {
                    "record": f"slo:sli_error:ratio_rate{window}",
                    "expr": f"({errors})\n/\n({total})\n",
                    "labels": {**labels, "sloth_window": window},
                }
            )
        own = f'sloth_id="shop-{name}", sloth_service="shop", sloth_slo="{name}"'
        meta = [
            {
                "record": "slo:sli_error:ratio_rate30d",
                "expr": f"sum_over_time(slo:sli_error:ratio_rate5m{{{own}}}[30d])\n"
                "/ ignoring (sloth_window)\n"
                f"count_over_time(slo:sli_error:ratio_rate5m{{{own}}}[30d])\n",
                "labels": {**labels, "sloth_window": "30d"},
            },
            {"record": "slo:objective:ratio", "expr": "vector(0.999)", "labels": labels},
            {"record": "slo:error_budget:ratio", "expr": "vector(1-0.999)", "labels": labels},
            {
                "record": "slo:current_burn_rate:ratio",
                "expr": f"slo:sli_error:ratio_rate5m{{{own}}}\n"
                "/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
                f"slo:error_budget:ratio{{{own}}}\n",
                "labels": labels,
            },
        ]
        alerts = []
        for long, short, factor, severity in TIERS:
            alerts.append(
                {
                    "alert": "SLOBurn",
                    "expr": f"(max(slo:sli_error:ratio_rate{long}{{{own}}} > ({factor} * 0.001)) "
                    f"without (sloth_window)\nand\nmax(slo:sli_error:ratio_rate{short}{{{own}}} > "
                    f"({factor} * 0.001)) without (sloth_window))\n",
                    "labels": {"severity": severity, "long_window": long, "short_window": short},
                }
            )
        groups += [
            {"name": f"sloth-slo-sli-recordings-shop-{name}", "rules": recordings},
            {"name": f"sloth-slo-meta-recordings-shop-{name}", "rules": meta},
            {"name": f"sloth-slo-alerts-shop-{name}", "rules": alerts},
        ]
    return {"groups": groups}


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def write_history(
    path: Path, count: int, tenants: int, origin: int, start: int, end: int, shape: str
) -> int:
    """The backfill file (OpenMetrics) for [start, end]: the raw counters (counting from
    ``origin``) when ``shape`` is empty, else the recorded series that rule set reads over long
    ranges (each set gets only its own). Returns the number of samples."""
    samples = 0
    tenant_names = [f"t{k:02d}" for k in range(tenants)]
    with path.open("w") as out:
        out.write(f"# TYPE {METRIC.removesuffix('_count')} unknown\n")
        for k in range(count if not shape else 0):
            route = f"/r{k:02d}"
            for tenant in tenant_names:
                for status, error_type, per_second in (("200", "", 1.0), ("500", "500", 0.001)):
                    series = METRIC + _labels(
                        job="shop", http_route=route, http_request_method="GET",
                        http_response_status_code=status, error_type=error_type,
                        tenant_id=tenant,
                    )  # fmt: skip
                    lines = [
                        f"{series} {round((t - origin) * per_second, 3)} {t}\n"
                        for t in range(start, end + 1, SCRAPE)
                    ]
                    out.writelines(lines)
                    samples += len(lines)

        def recorded(name: str, step: int, span: int, value: float, **labels: str) -> None:
            nonlocal samples
            series = name + _labels(**labels)
            first = max(start, end - span)
            first += -first % step  # on the step's grid, as a group's evaluations are
            lines = [f"{series} {value} {t}\n" for t in range(first, end + 1, step)]
            out.writelines(lines)
            samples += len(lines)

        for k in range(count if shape else 0):
            name = f"route-{k:02d}"
            for tenant in tenant_names if shape.endswith("/tenant") else [None]:
                extra = {"tenant_id": tenant} if tenant else {}
                total = 2.0 if tenant else 2.0 * tenants
                if shape.startswith("obskit"):
                    for kind, value in (("total", total), ("bad", total * 0.0005)):
                        recorded(f"slo:sli_{kind}:tile5m", 300, 86400, value, slo=name, **extra)
                        recorded(f"slo:sli_{kind}:tile1h", 3600, end - start, value, slo=name,
                                 **extra)  # fmt: skip
                else:
                    sloth = {"sloth_id": f"shop-{name}", "sloth_service": "shop",
                             "sloth_slo": name, "sloth_window": "5m", **extra}  # fmt: skip
                    recorded("slo:sli_error:ratio_rate5m", SCRAPE, end - start, 0.0005, **sloth)
        out.write("# EOF\n")
    return samples


@contextlib.contextmanager
def prometheus(data: Path, rule_file: Path) -> Iterator[str]:
    """A Prometheus over ``data`` (a copy) evaluating ``rule_file``; its base URL."""
    config = data.parent / f"{rule_file.stem}.prometheus.yml"
    config.write_text(dump({"global": {"evaluation_interval": "15s"},
                            "rule_files": [str(rule_file)]}))  # fmt: skip
    port = free_port()
    log = (data.parent / f"{rule_file.stem}.log").open("w")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=60d"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def _get(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())["data"]


def measure(base: str, rounds: int, interval: float) -> tuple[dict[str, list[float]], int]:
    """Per group, the evaluation durations seen over ``rounds`` evaluations; and the series the
    recording rules write."""
    seen: dict[str, list[float]] = {}
    last: dict[str, str] = {}
    deadline = time.monotonic() + rounds * interval * 3 + 60
    while time.monotonic() < deadline:
        groups = _get(base, "/api/v1/rules")["groups"]
        for group in groups:
            stamp = group.get("lastEvaluation", "")
            if stamp and not stamp.startswith("0001") and stamp != last.get(group["name"]):
                last[group["name"]] = stamp
                seen.setdefault(group["name"], []).append(float(group["evaluationTime"]))
                for rule in group["rules"]:
                    if rule.get("health") == "err":
                        raise SystemExit(f"{group['name']}: {rule.get('lastError')}")
        if groups and all(len(seen.get(g["name"], [])) >= rounds for g in groups):
            break
        time.sleep(interval / 3)
    # Each set's data holds only its own recorded series: all of them are what its rules write.
    result = _get(base, "/api/v1/query", query='count({__name__=~"slo:.*"})')["result"]
    return seen, int(float(result[0]["value"][1])) if result else 0


def backfill(work: Path, blocks: Path, args: argparse.Namespace, origin: int, start: int,
             end: int, shape: str = "") -> int:  # fmt: skip
    """Write [start, end] of the history and turn it into TSDB blocks under ``blocks``."""
    history = work / "history.om"
    samples = write_history(history, args.objectives, args.tenants, origin, start, end, shape)
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
         str(history), str(blocks)],
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    history.unlink()
    return samples


# Production intervals of obskit's groups (seconds), by the suffix of their name.
OBSKIT_INTERVALS = {"rates": 30.0, "alerts": 30.0, "5m": 300.0, "1h": 3600.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objectives", type=int, default=50)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--days", type=int, default=3, help="days of history backfilled")
    parser.add_argument("--rounds", type=int, default=8, help="evaluations measured per set")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between evaluations")
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: scripts/setup --with-prometheus installs it")
    work = Path(tempfile.mkdtemp(prefix="bench-slo-"))
    try:
        interval = f"{int(args.interval)}s"
        sets: dict[str, str] = {}
        for name, by_tenant in (("obskit", False), ("obskit/tenant", True)):
            options = rules.RuleOptions(interval=interval, dense=True)
            sets[name] = rules.render(objectives(args.objectives, by_tenant), options)
        for name, by_tenant in (("sloth", False), ("sloth/tenant", True)):
            shape = sloth_rules(args.objectives, by_tenant)
            for group in shape["groups"]:
                group["interval"] = interval
            sets[name] = dump(shape)
        end = int(time.time()) // 60 * 60 - 60
        origin = end - args.days * 86400
        began = time.perf_counter()
        blocks = work / "blocks"
        samples = backfill(work, blocks, args, origin, origin, end)
        print(f"raw history: {samples:,} samples over {args.days} d, backfilled in "
              f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
        results = {}
        for name, text in sets.items():
            rule_file = work / f"{name.replace('/', '-')}.rules.yml"
            rule_file.write_text(text)
            data = work / f"data-{rule_file.stem}"
            shutil.copytree(blocks, data, copy_function=shutil.copy)
            # This set's recorded history, and the raw minutes since the history ended (so that
            # every run reads 5 fresh minutes).
            now = int(time.time()) // 60 * 60
            own = work / "own"
            samples += backfill(work, own, args, origin, origin, end, shape=name)
            backfill(work, own, args, origin, end + 60, now)
            for block in own.iterdir():
                shutil.move(str(block), data / block.name)
            shutil.rmtree(own)
            with prometheus(data, rule_file) as base:
                durations, series = measure(base, args.rounds, args.interval)
            shutil.rmtree(data)
            per_eval = sum(statistics.median(d) for d in durations.values())
            per_second = sum(
                statistics.median(d)
                / (OBSKIT_INTERVALS.get(g.rsplit(":", 1)[-1], 30.0) if name.startswith("obskit")
                   else 30.0)
                for g, d in durations.items()
            )  # fmt: skip
            results[name] = (per_eval, per_second, series, len(durations))
            print(f"{name}: done", flush=True)
        print(f"\n{args.objectives} objectives x {args.tenants} tenants, "
              f"{args.rounds} evaluations each (medians)\n")  # fmt: skip
        print(f"{'rule set':<15}{'groups':>7}{'eval (ms)':>11}{'ms per s':>10}{'series':>9}")
        for name, (per_eval, per_second, series, groups) in results.items():
            print(f"{name:<15}{groups:>7}{per_eval * 1000:>11.1f}{per_second * 1000:>10.2f}"
                  f"{series:>9}")  # fmt: skip
        o, ot, s, st = (results[k] for k in ("obskit", "obskit/tenant", "sloth", "sloth/tenant"))
        print(
            f"\nper tenant / aggregate: obskit {ot[0] / o[0]:.2f}x per evaluation, "
            f"{ot[1] / o[1]:.2f}x per second; sloth {st[0] / s[0]:.2f}x"
        )
        print(f"obskit / sloth: aggregate {o[0] / s[0]:.2f}x, per tenant {ot[0] / st[0]:.2f}x "
              f"per evaluation; per second (production intervals) {o[1] / s[1]:.2f}x and "
              f"{ot[1] / st[1]:.2f}x")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
