"""The demo report's figures, computed from the run's artifacts only.

``build`` reads the recorded scrapes (``scrapes.jsonl``), the judge's looks (``judge.jsonl``,
``judge-<phase>.json``), the kept-span sinks, the log files, the deploy marker and the requests
sent, and returns plain data — also written to ``report.json`` — so the test suite can check each
figure against the artifact it came from. :mod:`obskit.demo.render` turns it into text.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from obskit._tracefile import bars as waterfall_bars
from obskit._tracefile import trace_rule
from obskit.demo.analysis import Red, Scrape, bucket_quantile, read_jsonl, red_by
from obskit.demo.figures import Recorded, bucket_counts, difference
from obskit.demo.traffic import Outcome

__all__ = ["build"]

DURATION = "http_server_request_duration_seconds"
POOL_WAIT = "db_client_connection_wait_time_seconds"
POOL_LABEL = "db_client_connection_pool_name"
# USE gauges shown when the collectors expose them: (label, family, unit).
_USE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("CPU utilization (share of available cores)", "process_cpu_utilization_ratio", "share"),
    ("CPU available (cores: quota, else affinity)", "obskit_process_cpu_available_cores", "n"),
    ("CPU throttled periods (cgroup)", "obskit_cgroup_cpu_throttled_periods_total", "n"),
    ("memory utilization (RSS / limit)", "process_memory_utilization_ratio", "share"),
    ("OOM kills (cgroup)", "obskit_cgroup_memory_oom_kills_total", "n"),
    ("open file descriptors", "process_unix_file_descriptors", "n"),
    ("threads", "process_threads", "n"),
    ("event-loop utilization", "obskit_event_loop_utilization_ratio", "share"),
    ("event-loop tasks", "obskit_event_loop_tasks", "n"),
    ("orders DB pool: max connections", "db_client_connection_max", "n"),
    ("orders DB pool: waits timed out", "db_client_connection_timeouts_total", "n"),
)
_USE_HISTOGRAMS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("event-loop lag p99", "obskit_event_loop_lag_seconds", {}),
    ("GC pause p99", "obskit_gc_pause_seconds", {}),
    ("orders DB pool wait p99", POOL_WAIT, {POOL_LABEL: "orders"}),
    ("default executor queue wait p99", "obskit_executor_queue_wait_seconds", {}),
)


def _red_rows(groups: dict[str, Red], seconds: float) -> list[dict[str, Any]]:
    return [
        {
            "key": key or "(none)",
            "requests": int(red.requests),
            "rate_per_s": red.requests / seconds if seconds else 0.0,
            "errors": int(red.errors),
            "error_ratio": red.error_ratio,
            "p50_s": red.quantile(0.50),
            "p95_s": red.quantile(0.95),
            "p99_s": red.quantile(0.99),
        }
        for key, red in sorted(groups.items(), key=lambda item: -item[1].requests)
    ]


def _merged(scrapes: Iterable[Scrape]) -> Scrape:
    """Several processes' scrapes as one (their samples side by side: sums add up)."""
    merged = Scrape("")
    for scrape in scrapes:
        merged.samples.extend(scrape.samples)
    return merged


def _traces(spans: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[str(span.get("trace_id"))].append(span)
    return by_trace


def _root(spans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    servers = [s for s in spans if s.get("kind") == "SERVER" and s.get("service") == "shop"]
    return min(servers or spans, key=lambda s: s["start_time_unix_nano"])


def _duration(spans: Sequence[dict[str, Any]]) -> float:
    root = _root(spans)
    return float(root["end_time_unix_nano"] - root["start_time_unix_nano"]) / 1e9


def _pool_wait(spans: Sequence[dict[str, Any]]) -> float | None:
    waits = [s for s in spans if s.get("name") == "orders.pool_wait"]
    if not waits:
        return None
    return float(sum(s["end_time_unix_nano"] - s["start_time_unix_nano"] for s in waits)) / 1e9


def _trace_view(trace_id: str, spans: list[dict[str, Any]], instance: str) -> dict[str, Any]:
    root = _root(spans)
    attributes = root.get("attributes") or {}
    return {
        "trace_id": trace_id,
        "instance": instance,
        "request_id": attributes.get("correlation_id"),
        "tenant": attributes.get("tenant_id"),
        "route": attributes.get("http.route"),
        "rule": trace_rule(spans),
        "duration_s": _duration(spans),
        "pool_wait_s": _pool_wait(spans),
        "bars": [dataclasses.asdict(bar) for bar in waterfall_bars(spans)],
    }


def _checkouts_of(
    spans_by_instance: dict[str, list[dict[str, Any]]], instances: Sequence[str], tenant: str
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    found = []
    for instance in instances:
        for trace_id, spans in _traces(spans_by_instance.get(instance, [])).items():
            attributes = _root(spans).get("attributes") or {}
            if (
                attributes.get("tenant_id") == tenant
                and attributes.get("http.route") == "/checkout"
            ) and attributes.get("http.response.status_code") == 200:
                found.append((instance, trace_id, spans))
    return found


def _paths(
    spans_by_instance: dict[str, list[dict[str, Any]]],
    inventory: list[dict[str, Any]],
    tenant: str,
) -> dict[str, Any]:
    """The slowest kept checkout of ``tenant`` on v2 and a typical one on v1, with the spans
    the inventory kept for the same traces."""
    by_trace = _traces(inventory)
    canary = _checkouts_of(spans_by_instance, ["shop-canary"], tenant)
    stable = _checkouts_of(spans_by_instance, ["shop-1", "shop-2"], tenant)
    out: dict[str, Any] = {"kept_canary_traces": len(canary), "kept_stable_traces": len(stable)}
    if canary:
        instance, trace_id, spans = max(canary, key=lambda item: _duration(item[2]))
        out["canary"] = _trace_view(trace_id, [*spans, *by_trace.get(trace_id, [])], instance)
    if stable:
        ordered = sorted(stable, key=lambda item: _duration(item[2]))
        instance, trace_id, spans = ordered[len(ordered) // 2]
        out["stable"] = _trace_view(trace_id, [*spans, *by_trace.get(trace_id, [])], instance)
    return out


def _sampling(name: str, scrape: Scrape, spans: list[dict[str, Any]]) -> dict[str, Any]:
    decided: defaultdict[str, float] = defaultdict(float)
    for sample in scrape.find("obskit_tail_decisions_total"):
        decided[f"{sample.labels.get('decision')}:{sample.labels.get('rule')}"] += sample.value
    traces = _traces(spans)
    return {
        "service": name,
        "traces_decided": int(sum(decided.values())),
        "decisions": {key: int(value) for key, value in sorted(decided.items())},
        "traces_kept_in_sink": len(traces),
        "kept_by_rule": dict(sorted(Counter(trace_rule(t) for t in traces.values()).items())),
        "spans_in_sink": len(spans),
    }


def _lines_of(logs: Iterable[dict[str, Any]], request_id: str | None) -> list[dict[str, Any]]:
    if not request_id:
        return []
    return sorted(
        (line for line in logs if line.get("correlation_id") == request_id),
        key=lambda line: str(line.get("timestamp")),
    )


def _use(scrape: Scrape) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, family, unit in _USE_ROWS:
        value = scrape.value(family)
        if value is not None:
            rows.append({"resource": label, "value": value, "unit": unit})
    for label, family, labels in _USE_HISTOGRAMS:
        buckets = bucket_counts([scrape], family, **labels)
        if buckets:
            rows.append(
                {"resource": label, "value": bucket_quantile(0.99, buckets), "unit": "seconds"}
            )
    return rows


def _p99_by_phase(recorded: Recorded, tenant: str) -> list[dict[str, Any]]:
    """The tenant's checkout p50 and p99 per phase and version, from differences of recorded
    scrapes."""
    rows = []
    spans = (
        ("steady", "v1", ("shop-1", "shop-2"), "steady"),
        ("canary", "v1", ("shop-1", "shop-2"), "canary"),
        ("canary", "v2", ("shop-canary",), "canary"),
        ("rollback", "v1", ("shop-1", "shop-2"), "rollback"),
    )
    for phase, version, instances, recorded_phase in spans:
        after, before = [], []
        for instance in instances:
            rows_of = [r for r in recorded.rows if r["instance"] == instance]
            inside = [r for r in rows_of if r["phase"] == recorded_phase]
            if not inside:
                continue
            earlier = [r for r in rows_of if r["seq"] < inside[0]["seq"]]
            later = [r for r in rows_of if r["seq"] > inside[-1]["seq"] and not r["phase"]]
            before.append(earlier[-1] if earlier else None)
            after.append(later[0] if later and instance == "shop-canary" else inside[-1])
        labels = {"tenant_id": tenant, "http_route": "/checkout"}
        end = bucket_counts([recorded.scrape(r) for r in after], DURATION, **labels)
        start = bucket_counts([recorded.scrape(r) for r in before if r], DURATION, **labels)
        buckets = difference(end, start)
        total = max(buckets.values()) if buckets else 0.0
        rows.append(
            {
                "phase": phase,
                "version": version,
                "requests": round(total),
                "p50_s": bucket_quantile(0.50, buckets) if total > 0 else None,
                "p99_s": bucket_quantile(0.99, buckets) if total > 0 else None,
                "from_seq": [r["seq"] if r else None for r in before],
                "to_seq": [r["seq"] for r in after],
            }
        )
    return rows


def _judge(out: Path) -> dict[str, Any]:
    looks = list(read_jsonl(out / "judge.jsonl"))
    reports = {}
    for phase in ("steady", "canary", "rollback"):
        path = out / f"judge-{phase}.json"
        if path.exists():
            reports[phase] = json.loads(path.read_text())
    canary = reports.get("canary", {})
    failed = [c for c in canary.get("checks", []) if c.get("decision") == "FAIL"]
    # Causes that moved but are not decisive yet: the strongest evidence first.
    moving = sorted(
        (
            c
            for c in canary.get("checks", [])
            if c.get("role") != "gate"
            and c.get("decision") != "FAIL"
            and isinstance(c.get("effect"), (int, float, str))
            and _above(c.get("effect"), 1 + float(c.get("tolerance", 0)))
            and (c["evidence"].get("e_value") or 0) > 1
        ),
        key=lambda c: -float(c["evidence"]["e_value"]),
    )[:2]
    first_fail = next((look for look in looks if look["verdict"] == "FAIL"), None)
    return {
        "looks": [{k: look[k] for k in ("phase", "look", "t", "verdict")} for look in looks],
        "first_fail": first_fail,
        "final": {phase: report.get("verdict") for phase, report in reports.items()},
        "failed_checks": [
            {
                "metric": c["metric"],
                "segment": c["segment"],
                "role": c["role"],
                "baseline": c["baseline"]["value"],
                "canary": c["canary"]["value"],
                "baseline_count": c["baseline"]["count"],
                "canary_count": c["canary"]["count"],
                "effect": c["effect"],
                "e_value": c["evidence"]["e_value"],
                "threshold": c["evidence"]["threshold"],
            }
            for c in [*failed, *moving]
        ],
        "decided": [c["decision"] == "FAIL" for c in [*failed, *moving]],
        "reasons": canary.get("reasons", []),
    }


def _above(effect: object, limit: float) -> bool:
    if effect == "inf":
        return True
    return isinstance(effect, (int, float)) and effect > limit


def _guardrail(judge: dict[str, Any], tenant_named: list[str]) -> list[dict[str, str]]:
    """Action items the data suggests: every cause that moved becomes a gate of its own."""
    items = []
    for check, decided in zip(judge["failed_checks"], judge["decided"], strict=True):
        if check["role"] == "gate" or not check["segment"] or not decided:
            continue
        (_, value), *_ = check["segment"].items()
        who = f" for tenant {tenant_named[0]}" if tenant_named else ""
        before, after = check["baseline"], check["canary"]
        moved = (
            f"{before * 1000:.0f} ms on v1 -> {after * 1000:.0f} ms on v2"
            if isinstance(before, (int, float)) and isinstance(after, (int, float))
            else "it moved"
        )
        items.append(
            {
                "action": f"a canary check on {check['metric']} of {value}{who} ({moved}): "
                "the resource the regression waited on, judged as a gate next time",
                "command": "obskit canary judge ... --by tenant_id --saturation-gates",
                "owner": "(team to fill in)",
                "due": "(team to fill in)",
            }
        )
    return items


def build(
    out: Path,
    outcomes: Sequence[Outcome],
    times: dict[str, float | None],
    story: dict[str, Any],
) -> dict[str, Any]:
    """Every figure of the report, from the artifacts in ``out``."""
    recorded = Recorded(out)
    instances = list(recorded.instances())
    tenant = str(story["tenant"])
    started = float(times["started"] or 0.0)
    steady_rows = [recorded.last(i, "steady") for i in ("shop-1", "shop-2")]
    steady = _merged(recorded.scrape(r) for r in steady_rows if r)
    steady_seconds = (steady_rows[0] or {}).get("t", 0.0) if steady_rows[0] else 0.0
    final = {i: recorded.scrape(r) for i in instances if (r := recorded.last(i))}
    inventory_text = (
        (out / "inventory-metrics.txt").read_text()
        if (out / "inventory-metrics.txt").exists()
        else ""
    )
    inventory = Scrape(inventory_text)
    spans = {name: list(read_jsonl(out / f"{name}-spans.jsonl")) for name in instances}
    inventory_spans = list(read_jsonl(out / "inventory-spans.jsonl"))
    logs = [line for name in [*instances, "inventory"] for line in read_jsonl(out / f"{name}.log")]
    failed_ids = sorted(o.request_id for o in outcomes if o.status >= 500)
    trace_of = {
        str(line["correlation_id"]): str(line["trace_id"])
        for line in logs
        if line.get("service") == "shop" and line.get("trace_id") and line.get("correlation_id")
    }
    kept = {t for s in spans.values() for t in _traces(s)}
    judge = _judge(out)
    named = sorted(
        {c["segment"]["tenant_id"] for c in judge["failed_checks"] if "tenant_id" in c["segment"]}
    )
    paths = _paths(spans, inventory_spans, tenant)
    slow_request = (paths.get("canary") or {}).get("request_id")
    marker = next(
        (
            line
            for line in read_jsonl(out / "deploys.log")
            if line.get("event") == "deployment.marked"
        ),
        None,
    )
    return {
        "traffic": {
            "requests": len(outcomes),
            "elapsed_s": (times["finished"] or started) - started,
            "statuses": {str(k): v for k, v in sorted(Counter(o.status for o in outcomes).items())},
            "by_instance": dict(sorted(Counter(o.instance for o in outcomes).items())),
            "responses_5xx": len(failed_ids),
            "failed_request_ids": failed_ids,
            "ids_echoed": sum(1 for o in outcomes if o.echoed_id == o.request_id),
            "resent": sum(1 for o in outcomes if o.retried),
            "rate_per_s": story["rate"],
        },
        "story": {
            **story,
            "deployed_t": times["deployed"] - started if times["deployed"] else None,
            "rolled_back_t": times["rolled_back"] - started if times["rolled_back"] else None,
            "deploy_marker": marker,
        },
        "steady": {
            "seconds": steady_seconds,
            "red_by_route": _red_rows(red_by(steady, "http_route"), steady_seconds),
            "red_by_tenant": _red_rows(red_by(steady, "tenant_id"), steady_seconds),
            "seqs": [r["seq"] for r in steady_rows if r],
        },
        "dependency_by_tenant": _red_rows(
            red_by(inventory, "tenant_id"), (times["finished"] or started) - started
        ),
        "use": _use(final["shop-1"]) if "shop-1" in final else [],
        "judge": judge,
        "tenant_named": named,
        "tenant_p99": _p99_by_phase(recorded, tenant),
        "paths": paths,
        "slow_request": {"request_id": slow_request, "log_lines": _lines_of(logs, slow_request)},
        "sampling": [
            _sampling(name, final[name], spans[name]) for name in instances if name in final
        ],
        "error_traces": {
            "responses_5xx": len(failed_ids),
            "traces_found": sum(1 for r in failed_ids if r in trace_of),
            "traces_kept": sum(1 for r in failed_ids if trace_of.get(r) in kept),
        },
        "failed_request": {
            "request_id": failed_ids[0] if failed_ids else None,
            "log_lines": _lines_of(logs, failed_ids[0] if failed_ids else None),
        },
        "guardrail": _guardrail(judge, named),
        "artifacts": {
            "directory": str(out),
            "requests": str(out / "requests.jsonl"),
            "scrapes": str(out / "scrapes.jsonl"),
            "judge": str(out / "judge.jsonl"),
            "deploys": str(out / "deploys.log"),
            "kept_spans": {
                name: str(out / f"{name}-spans.jsonl") for name in [*instances, "inventory"]
            },
            "logs": {name: str(out / f"{name}.log") for name in [*instances, "inventory"]},
            "report": str(out / "report.json"),
        },
    }
