"""`obskit demo` runs to its report, and every figure it states matches the artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from obskit.demo.analysis import Scrape, read_jsonl, red_by

REQUESTS = 400


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run shared by the checks below."""
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "obskit.cli",
            "demo",
            "--requests",
            str(REQUESTS),
            "--out",
            str(out),
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def _report(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text()))


def test_report_walks_the_debugging_contract(demo_run: tuple[Path, str]) -> None:
    """The printed report has every section, plain (no ANSI codes) when piped."""
    _, stdout = demo_run
    for heading in ("RED per route", "RED per tenant", "USE", "tail sampler", "Logs say WHY"):
        assert heading in stdout
    assert "\x1b[" not in stdout


def test_traffic_figures_match_requests_sent(demo_run: tuple[Path, str]) -> None:
    """Requests and 5xx counts in the report equal those in requests.jsonl."""
    out, _ = demo_run
    sent = list(read_jsonl(out / "requests.jsonl"))
    report = _report(out)
    assert REQUESTS == len(sent) == report["traffic"]["requests"]
    assert sum(1 for r in sent if r["status"] >= 500) == report["traffic"]["responses_5xx"]
    assert REQUESTS == report["traffic"]["ids_echoed"]


def test_every_error_trace_is_kept(demo_run: tuple[Path, str]) -> None:
    """Kept error traces equal the 5xx responses sent, checked against the span sink itself."""
    out, _ = demo_run
    report = _report(out)
    failed = {r["request_id"] for r in read_jsonl(out / "requests.jsonl") if r["status"] >= 500}
    assert failed, "the fixed traffic plan contains failing checkouts"
    spans_by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in read_jsonl(out / "shop-spans.jsonl"):
        spans_by_trace[span["trace_id"]].append(span)
    server_500 = {
        trace_id
        for trace_id, spans in spans_by_trace.items()
        for span in spans
        if span["kind"] == "SERVER" and span["attributes"].get("http.response.status_code") == 500
    }
    assert len(failed) == len(server_500) == report["error_traces"]["traces_kept"]
    for trace_id in server_500:
        # Kept, and saying why (a trace promoted as slow before it failed is an error trace).
        assert all(s["attributes"].get("obskit.sampling.rule") for s in spans_by_trace[trace_id])


def test_baseline_is_a_small_share(demo_run: tuple[Path, str]) -> None:
    """Ordinary traces are kept only at the small baseline rate, not wholesale."""
    out, _ = demo_run
    decisions = Scrape((out / "shop-metrics.txt").read_text())
    baseline = decisions.total("obskit_tail_decisions_total", decision="keep", rule="baseline")
    dropped = decisions.total("obskit_tail_decisions_total", decision="drop")
    assert dropped > 0
    assert baseline / (baseline + dropped) < 0.05


def test_red_figures_come_from_the_snapshot(demo_run: tuple[Path, str]) -> None:
    """Per-tenant RED in the report is the snapshot's; the slow tenant stands out."""
    out, _ = demo_run
    report = _report(out)
    scrape = Scrape((out / "shop-metrics.txt").read_text())
    by_tenant = red_by(scrape, "tenant_id")
    rows = {row["key"]: row for row in report["red_by_tenant"]}
    for tenant, red in by_tenant.items():
        assert int(red.requests) == rows[tenant or "(none)"]["requests"]
    slow = rows["globex"]["p50_ms"]
    assert all(slow > rows[t]["p50_ms"] for t in ("acme", "initech", "umbrella", "hooli"))


def test_waterfall_crosses_both_services(demo_run: tuple[Path, str]) -> None:
    """The waterfall shows one kept slow trace with spans from shop and inventory."""
    out, _ = demo_run
    bars = _report(out)["waterfall"]["bars"]
    labels = " ".join(bar["label"] for bar in bars)
    assert "shop:" in labels
    assert "inventory:" in labels


def test_failed_request_logs_include_flushed_debug_lines(demo_run: tuple[Path, str]) -> None:
    """The failed request's lines include held debug lines, written because its trace was kept."""
    out, _ = demo_run
    failed = _report(out)["failed_request"]
    levels = [line["level"] for line in failed["log_lines"]]
    assert "debug" in levels
    access = [line for line in failed["log_lines"] if line.get("logger") == "obskit.access"]
    assert 500 in {line.get("status") for line in access}
    assert all(line["correlation_id"] == failed["request_id"] for line in failed["log_lines"])
    assert "tok_live_123456789" not in (out / "shop.log").read_text()


def test_blocking_call_shows_as_loop_lag(demo_run: tuple[Path, str]) -> None:
    """The injected 200 ms blocking call appears in the shop's loop-lag histogram (USE)."""
    out, _ = demo_run
    scrape = Scrape((out / "shop-metrics.txt").read_text())
    total = scrape.total("obskit_event_loop_lag_seconds_count")
    under_100ms = scrape.total("obskit_event_loop_lag_seconds_bucket", le="0.1")
    assert total > under_100ms
    rows = {row["resource"]: row["value"] for row in _report(out)["use"]}
    assert "event-loop lag p99 (ms)" in rows
