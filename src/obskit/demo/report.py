"""The demo report: figures computed from the run's artifacts, then rendered for a terminal.

``build`` reads only artifacts (the scrapes, the kept-span sinks, the log files and the list of
requests sent) and returns plain data, which is also written to ``report.json`` so the test suite
can check every figure against the artifacts it came from.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from obskit._terminal import Bar, Style, table, waterfall
from obskit._tracefile import bars as waterfall_bars
from obskit._tracefile import trace_rule
from obskit.demo.analysis import Red, Scrape, read_jsonl, red_by
from obskit.demo.traffic import Outcome

__all__ = ["build", "render"]

ERROR_RULES = ("error", "server_error")
# USE gauges shown in the report when the collectors expose them: (label, family, labels).
_USE_ROWS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("CPU utilization (share of available cores)", "process_cpu_utilization_ratio", {}),
    ("CPU available (cores: quota, else affinity)", "obskit_process_cpu_available_cores", {}),
    ("CPU throttled periods (cgroup)", "obskit_cgroup_cpu_throttled_periods_total", {}),
    ("memory utilization (RSS / limit)", "process_memory_utilization_ratio", {}),
    ("OOM kills (cgroup)", "obskit_cgroup_memory_oom_kills_total", {}),
    ("open file descriptors", "process_unix_file_descriptors", {}),
    ("threads", "process_threads", {}),
    ("event-loop utilization", "obskit_event_loop_utilization_ratio", {}),
    ("event-loop tasks", "obskit_event_loop_tasks", {}),
    ("orders DB pool: max connections", "db_client_connection_max", {}),
    ("orders DB pool: waits timed out", "db_client_connection_timeouts_total", {}),
)
# USE histograms shown as p99 / max-bucket: (label, family).
_USE_HISTOGRAMS = (
    ("event-loop lag p99 (ms)", "obskit_event_loop_lag_seconds"),
    ("GC pause p99 (ms)", "obskit_gc_pause_seconds"),
    ("orders DB pool wait p99 (ms)", "db_client_connection_wait_time_seconds"),
    ("default executor queue wait p99 (ms)", "obskit_executor_queue_wait_seconds"),
)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _red_rows(groups: dict[str, Red], elapsed: float) -> list[dict[str, Any]]:
    rows = []
    for key, red in sorted(groups.items(), key=lambda item: -item[1].requests):
        rows.append(
            {
                "key": key or "(none)",
                "requests": int(red.requests),
                "rate_per_s": round(red.requests / elapsed, 2) if elapsed else 0.0,
                "errors": int(red.errors),
                "error_ratio": round(red.error_ratio, 4),
                "p50_ms": _ms(red.quantile(0.50)),
                "p95_ms": _ms(red.quantile(0.95)),
                "p99_ms": _ms(red.quantile(0.99)),
            }
        )
    return rows


def _traces(spans: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[str(span.get("trace_id"))].append(span)
    return by_trace


def _sampling(name: str, scrape: Scrape, spans: list[dict[str, Any]]) -> dict[str, Any]:
    decided: defaultdict[str, float] = defaultdict(float)
    for sample in scrape.find("obskit_tail_decisions_total"):
        decided[f"{sample.labels.get('decision')}:{sample.labels.get('rule')}"] += sample.value
    kept_spans = scrape.total("obskit_tail_spans_total", decision="kept")
    dropped_spans = scrape.total("obskit_tail_spans_total", decision="dropped")
    traces = _traces(spans)
    kept_by_rule = Counter(trace_rule(trace) for trace in traces.values())
    total_traces = sum(decided.values())
    return {
        "service": name,
        "traces_decided": int(total_traces),
        "decisions": {key: int(value) for key, value in sorted(decided.items())},
        "traces_kept_in_sink": len(traces),
        "kept_by_rule": dict(sorted(kept_by_rule.items())),
        "spans_in_sink": len(spans),
        "export_share": round(kept_spans / (kept_spans + dropped_spans), 4)
        if kept_spans + dropped_spans
        else 0.0,
    }


def _log_lines(paths: Sequence[Path]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in paths:
        lines.extend(read_jsonl(path))
    return lines


def _pick_waterfall(
    traces: dict[str, list[dict[str, Any]]], services: int = 2
) -> tuple[str, list[dict[str, Any]]] | None:
    """The slowest kept slow trace that crosses both services."""
    best: tuple[float, str] | None = None
    for trace_id, spans in traces.items():
        if trace_rule(spans) != "slow":
            continue
        if len({span.get("service") for span in spans}) < services:
            continue
        duration = max(s["end_time_unix_nano"] for s in spans) - min(
            s["start_time_unix_nano"] for s in spans
        )
        if best is None or duration > best[0]:
            best = (duration, trace_id)
    return None if best is None else (best[1], traces[best[1]])


def build(
    out: Path,
    outcomes: Sequence[Outcome],
    elapsed: float,
    scrapes: dict[str, str],
    urls: dict[str, str],
) -> dict[str, Any]:
    """Every figure of the report, from the artifacts in ``out``."""
    parsed = {name: Scrape(text) for name, text in scrapes.items()}
    shop = parsed["shop"]
    statuses = Counter(o.status for o in outcomes)
    failed_ids = sorted(o.request_id for o in outcomes if o.status >= 500)
    spans = {name: list(read_jsonl(out / f"{name}-spans.jsonl")) for name in scrapes}
    logs = _log_lines([out / f"{name}.log" for name in scrapes])

    # Which trace served each request: the lines logged for it carry both ids.
    trace_of: dict[str, str] = {}
    for line in logs:
        if line.get("service") == "shop" and line.get("trace_id") and line.get("correlation_id"):
            trace_of.setdefault(str(line["correlation_id"]), str(line["trace_id"]))
    shop_traces = _traces(spans["shop"])
    failed_traces = [trace_of.get(request_id) for request_id in failed_ids]
    kept_failed = [t for t in failed_traces if t is not None and t in shop_traces]

    all_traces = _traces([*spans["shop"], *spans["inventory"]])
    picked = _pick_waterfall(all_traces)
    bars = [dataclasses.asdict(bar) for bar in waterfall_bars(picked[1])] if picked else []

    example_id = failed_ids[0] if failed_ids else None
    example_lines = sorted(
        (line for line in logs if example_id and line.get("correlation_id") == example_id),
        key=lambda line: str(line.get("timestamp")),
    )
    use: list[dict[str, Any]] = [
        {"resource": label, "value": shop.value(family, **labels)}
        for label, family, labels in _USE_ROWS
        if shop.value(family, **labels) is not None
    ]
    for label, family in _USE_HISTOGRAMS:
        histogram = red_by(shop, "", name=family).get("")
        if histogram is not None and histogram.buckets:
            use.append({"resource": label, "value": _ms(histogram.quantile(0.99))})
    return {
        "traffic": {
            "requests": len(outcomes),
            "elapsed_s": round(elapsed, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "responses_5xx": len(failed_ids),
            "failed_request_ids": failed_ids,
            "ids_echoed": sum(1 for o in outcomes if o.echoed_id == o.request_id),
            "resent": sum(1 for o in outcomes if o.retried),
        },
        "red_by_route": _red_rows(red_by(shop, "http_route"), elapsed),
        "red_by_tenant": _red_rows(red_by(shop, "tenant_id"), elapsed),
        "dependency_by_tenant": _red_rows(red_by(parsed["inventory"], "tenant_id"), elapsed),
        "use": use,
        "sampling": [_sampling(name, parsed[name], spans[name]) for name in scrapes],
        "error_traces": {
            "responses_5xx": len(failed_ids),
            "traces_found": sum(1 for t in failed_traces if t is not None),
            "traces_kept": len(kept_failed),
        },
        "waterfall": {"trace_id": picked[0] if picked else None, "bars": bars},
        "failed_request": {"request_id": example_id, "log_lines": example_lines},
        "artifacts": {
            "directory": str(out),
            "requests": str(out / "requests.jsonl"),
            "kept_spans": {name: str(out / f"{name}-spans.jsonl") for name in scrapes},
            "logs": {name: str(out / f"{name}.log") for name in scrapes},
            "metrics_snapshots": {name: str(out / f"{name}-metrics.txt") for name in scrapes},
            "metrics_urls": urls,
            "report": str(out / "report.json"),
        },
    }


_RED_HEADERS = ("", "req", "req/s", "5xx", "err %", "p50 ms", "p95 ms", "p99 ms")


def _red_table(rows: list[dict[str, Any]]) -> str:
    return table(
        _RED_HEADERS,
        [
            (
                row["key"],
                row["requests"],
                row["rate_per_s"],
                row["errors"],
                round(row["error_ratio"] * 100, 2),
                row["p50_ms"] if row["p50_ms"] is not None else "-",
                row["p95_ms"] if row["p95_ms"] is not None else "-",
                row["p99_ms"] if row["p99_ms"] is not None else "-",
            )
            for row in rows
        ],
    )


def render(figures: dict[str, Any], style: Style) -> str:
    """The report as text: aligned tables, a waterfall; styled only on a terminal."""
    traffic = figures["traffic"]
    parts = [
        style.heading("obskit demo report"),
        f"  {traffic['requests']} requests in {traffic['elapsed_s']} s; statuses "
        + ", ".join(f"{k}: {v}" for k, v in traffic["statuses"].items())
        + f"; request ids echoed: {traffic['ids_echoed']}/{traffic['requests']}"
        + f"; resent after the server closed a connection: {traffic['resent']}",
        style.heading("1. Metrics say THAT: RED per route (shop)"),
        _red_table(figures["red_by_route"]),
        style.heading("   RED per tenant (shop) — one tenant's latency stands out"),
        _red_table(figures["red_by_tenant"]),
        style.heading("   its dependency, inventory, per tenant"),
        _red_table(figures["dependency_by_tenant"]),
        style.heading("2. USE: the resources under the shop"),
        table(("resource", "value"), [(u["resource"], u["value"]) for u in figures["use"]])
        if figures["use"]
        else "  (no USE collectors exposed)",
        style.heading("3. Traces say WHERE: what the tail sampler kept, and why"),
    ]
    for sampling in figures["sampling"]:
        kept = ", ".join(f"{rule}: {n}" for rule, n in sampling["kept_by_rule"].items())
        parts.append(
            f"  {sampling['service']}: {sampling['traces_decided']} traces decided, "
            f"{sampling['traces_kept_in_sink']} kept ({kept or 'none'}); "
            f"spans exported: {sampling['export_share'] * 100:.1f}% of all spans"
        )
    errors = figures["error_traces"]
    check = "every one" if errors["traces_kept"] == errors["responses_5xx"] else "NOT all"
    parts.append(
        f"  5xx responses sent: {errors['responses_5xx']}; their traces kept: "
        f"{errors['traces_kept']} ({check})"
    )
    fall = figures["waterfall"]
    parts.append(style.heading(f"   a kept slow trace across both services: {fall['trace_id']}"))
    parts.append(waterfall([Bar(**bar) for bar in fall["bars"]], style=style))
    failed = figures["failed_request"]
    parts.append(
        style.heading(f"4. Logs say WHY: every line of failed request {failed['request_id']}")
    )
    for line in failed["log_lines"]:
        keys = ("timestamp", "service", "level", "logger", "event")
        head = " ".join(str(line.get(k, "")) for k in keys)
        skip = (*keys, "service_version", "environment", "exception", "correlation_id")
        rest = " ".join(f"{k}={v}" for k, v in line.items() if k not in skip)
        parts.append(f"  {head} {style.dim(rest)}")
        for exc in line.get("exception") or []:
            parts.append(
                style.bad(f"      exception: {exc.get('exc_type')}: {exc.get('exc_value')}")
            )
    if not failed["log_lines"]:
        parts.append("  (no failed request in this run)")
    artifacts = figures["artifacts"]
    parts.append(style.heading("5. Artifacts"))
    parts.append(
        table(
            ("what", "where"),
            [
                ("directory", artifacts["directory"]),
                ("requests sent", artifacts["requests"]),
                *[(f"kept spans ({k})", v) for k, v in artifacts["kept_spans"].items()],
                *[(f"logs ({k})", v) for k, v in artifacts["logs"].items()],
                *[
                    (f"metrics snapshot ({k})", v)
                    for k, v in artifacts["metrics_snapshots"].items()
                ],
                *[(f"/metrics ({k})", v) for k, v in artifacts["metrics_urls"].items()],
                ("this report as JSON", artifacts["report"]),
            ],
        )
    )
    return "\n".join(parts)
