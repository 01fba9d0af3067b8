"""`obskit demo` walks the incident loop, and every figure it states matches the artifacts.

One run of the whole story (module-scoped); each test checks a part of the report against the
files the run left: the recorded scrapes, the judge's looks, the kept spans, the logs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import subprocess_env
from obskit._terminal import Style
from obskit._times import parse_time
from obskit.canary.api import plan
from obskit.canary.checks import needed
from obskit.canary.judge import Judge, JudgeOptions
from obskit.canary.sources import ScrapeSource
from obskit.demo import render
from obskit.demo.analysis import Scrape, bucket_quantile, read_jsonl, red_by
from obskit.demo.figures import Recorded, bucket_counts
from obskit.demo.rollout import JUDGE_BY, Story
from obskit.replay.rules import evaluate_rules
from obskit.replay.store import Store

pytestmark = pytest.mark.slow
SLOWED = Story().tenant


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run shared by the checks below."""
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "demo", "--out", str(out)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def _report(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text()))


def _looks(out: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(out / "judge.jsonl"))


def test_report_walks_the_loop_plain_when_piped(demo_run: tuple[Path, str]) -> None:
    """The printed report has every step of the story and the old sections, with no ANSI codes."""
    _, stdout = demo_run
    for heading in (
        "1. Steady state",
        "RED per route",
        "RED per tenant",
        "USE of shop-1",
        "2. A change",
        "3. Detect",
        "4. Find the path",
        "tail sampler kept",
        "every log line of failed request",
        "5. Mitigate",
        "6. Guardrail",
    ):
        assert heading in stdout
    assert "\x1b[" not in stdout


def test_text_report_is_rendered_from_the_json_report(demo_run: tuple[Path, str]) -> None:
    """The text report is exactly report.json rendered: nothing in it comes from elsewhere."""
    out, stdout = demo_run
    text = render.render(_report(out), Style(False))
    assert stdout.rstrip().endswith(text.rstrip())


def test_numbers_read_well(demo_run: tuple[Path, str]) -> None:
    """No padded zeros (`28.000`, `0.000`) and table rows fit the columns under their headers."""
    _, stdout = demo_run
    assert not re.search(r"\b\d+\.000\b", stdout)
    lines = stdout.splitlines()
    tables = 0
    for n, line in enumerate(lines):
        if not re.fullmatch(r"  [- ]*-{3,}", line):  # a table's header rule
            continue
        tables += 1
        width = len(line)
        # Between two columns the rule has spaces: so has every row of the table.
        gaps = [i for i in range(1, width) if line[i] == " " and line[i - 1] == "-"]
        rows = []
        for row in lines[n + 1 :]:
            if not row.strip() or any(i < len(row) and row[i] != " " for i in gaps):
                break  # the text after the table
            rows.append(row)
        assert rows, (lines[n - 1], lines[n + 1])  # the first row lines up
        assert all(len(row) <= width for row in rows), (lines[n - 1], rows)
    assert tables >= 8  # RED, USE, the judge, the burn, p99 per phase, the timeline, ...


def test_verdicts_fail_the_canary_and_never_the_aa_parts(demo_run: tuple[Path, str]) -> None:
    """INCONCLUSIVE first, FAIL last before the rollback; no FAIL on the A/A parts."""
    out, _ = demo_run
    looks = _looks(out)
    by_phase: dict[str, list[str]] = defaultdict(list)
    for look in looks:
        by_phase[look["phase"]].append(look["verdict"])
    assert by_phase["steady"]
    assert by_phase["rollback"]
    assert "FAIL" not in by_phase["steady"] + by_phase["rollback"]
    canary = by_phase["canary"]
    assert "INCONCLUSIVE" == canary[0]
    assert "FAIL" == canary[-1]
    report = _report(out)
    fail_t = next(look["t"] for look in looks if look["verdict"] == "FAIL")
    assert report["story"]["deployed_t"] < fail_t <= report["story"]["rolled_back_t"]


def test_the_judge_names_the_slowed_tenant_and_p99(demo_run: tuple[Path, str]) -> None:
    """The failing checks are latency checks of the tenant v2 slowed, and no other tenant."""
    out, _ = demo_run
    report = _report(out)
    assert [SLOWED] == report["tenant_named"]
    canary = json.loads((out / "judge-canary.json").read_text())
    failed = [c for c in canary["checks"] if c["decision"] == "FAIL" and c["role"] == "gate"]
    assert any(c["metric"] == "latency p99" for c in failed)
    tenants = {c["segment"]["tenant_id"] for c in failed if "tenant_id" in c["segment"]}
    assert {SLOWED} == tenants
    errors = [c for c in canary["checks"] if c["metric"] == "error rate"]
    assert all(c["decision"] != "FAIL" for c in errors)  # the error rate stays flat
    pool = [
        c
        for c in canary["checks"]
        if c["metric"] == "pool wait p99"
        and c["segment"].get("db_client_connection_pool_name") == f"orders-{SLOWED}"
    ]
    assert pool
    assert pool[0]["canary"]["value"] > pool[0]["baseline"]["value"]


def test_judge_replays_from_the_recorded_scrapes(demo_run: tuple[Path, str]) -> None:
    """Judging the recorded snapshots again gives the verdict of every look in judge.jsonl."""
    out, _ = demo_run
    recorded = Recorded(out)
    looks = _looks(out)
    arms = {"steady": (["shop-1"], ["shop-2"]), "canary": (["shop-1", "shop-2"], ["shop-canary"])}
    arms["rollback"] = arms["steady"]
    for phase, (baseline, canary) in arms.items():
        specs = plan(by=JUDGE_BY)
        engine = Judge(specs, JudgeOptions(min_requests=Story().min_requests, by=JUDGE_BY))
        texts: dict[str, bytes] = {}
        source = ScrapeSource(baseline, canary, needed(specs), reader=texts.__getitem__)
        seqs = sorted({r["seq"] for r in recorded.rows if r["phase"] == phase})
        replayed = []
        for seq in seqs:
            rows = {r["instance"]: r for r in recorded.rows if r["seq"] == seq}
            if not all(name in rows for name in (*baseline, *canary)):
                continue
            texts.clear()
            texts.update({n: (out / rows[n]["file"]).read_bytes() for n in (*baseline, *canary)})
            counts = source.scrape()
            if counts is not None:
                engine.observe(*counts)
                replayed.append(engine.report().verdict)
        assert [look["verdict"] for look in looks if look["phase"] == phase] == replayed


def test_kept_traces_of_the_tenant_on_v2_show_the_pool_wait(demo_run: tuple[Path, str]) -> None:
    """The sink of v2 holds kept traces of the slowed tenant; the one shown waits on the pool
    longer than the v1 trace beside it."""
    out, _ = demo_run
    spans = list(read_jsonl(out / "shop-canary-spans.jsonl"))
    servers = [
        s
        for s in spans
        if s["kind"] == "SERVER"
        and s["attributes"].get("tenant_id") == SLOWED
        and s["attributes"].get("http.route") == "/checkout"
    ]
    assert servers
    paths = _report(out)["paths"]
    assert paths["canary"]["trace_id"] in {s["trace_id"] for s in servers}
    assert paths["canary"]["pool_wait_s"] > paths["stable"]["pool_wait_s"]
    labels = " ".join(bar["label"] for bar in paths["canary"]["bars"])
    assert "orders.pool_wait" in labels
    lines = _report(out)["slow_request"]["log_lines"]
    assert lines
    assert all(line["trace_id"] == paths["canary"]["trace_id"] for line in lines)


def test_tenant_p99_recovers_after_the_rollback(demo_run: tuple[Path, str]) -> None:
    """The tenant's checkout p50/p99 per phase are the recorded scrapes'; its median falls back
    on v1 (the median, as one host stall of a loaded machine moves a p99 of 150 requests)."""
    out, _ = demo_run
    recorded = Recorded(out)
    rows = {(r["phase"], r["version"]): r for r in _report(out)["tenant_p99"]}
    labels = {"tenant_id": SLOWED, "http_route": "/checkout"}
    row = rows[("canary", "v2")]
    seq = {r["seq"]: r for r in recorded.rows if r["instance"] == "shop-canary"}
    end = bucket_counts(
        [recorded.scrape(seq[row["to_seq"][0]])], "http_server_request_duration_seconds", **labels
    )
    assert row["requests"] == round(max(end.values()))
    assert row["p99_s"] == bucket_quantile(0.99, end)
    assert row["p50_s"] == bucket_quantile(0.50, end)
    assert rows[("rollback", "v1")]["p50_s"] < rows[("canary", "v2")]["p50_s"]


def test_steady_red_figures_come_from_the_snapshots(demo_run: tuple[Path, str]) -> None:
    """Per-tenant RED of the steady state is the sum of the v1 snapshots the report names."""
    out, _ = demo_run
    report = _report(out)
    recorded = Recorded(out)
    files = [
        r for r in recorded.rows if r["seq"] in report["steady"]["seqs"] and r["phase"] == "steady"
    ]
    merged = Scrape("")
    for row in files:
        if row["instance"] in ("shop-1", "shop-2") and row["seq"] == max(report["steady"]["seqs"]):
            merged.samples.extend(recorded.scrape(row).samples)
    rows = {row["key"]: row for row in report["steady"]["red_by_tenant"]}
    for tenant, red in red_by(merged, "tenant_id").items():
        assert int(red.requests) == rows[tenant or "(none)"]["requests"]


def test_traffic_figures_match_requests_sent(demo_run: tuple[Path, str]) -> None:
    """Requests and 5xx counts in the report equal those in requests.jsonl, split by instance."""
    out, _ = demo_run
    sent = list(read_jsonl(out / "requests.jsonl"))
    traffic = _report(out)["traffic"]
    assert len(sent) == traffic["requests"] == traffic["ids_echoed"]
    assert sum(1 for r in sent if r["status"] >= 500) == traffic["responses_5xx"]
    assert {"shop-1", "shop-2", "shop-canary"} == set(traffic["by_instance"])


def test_every_error_trace_is_kept(demo_run: tuple[Path, str]) -> None:
    """Kept 5xx server spans in the sinks equal the 5xx responses sent."""
    out, _ = demo_run
    failed = {r["request_id"] for r in read_jsonl(out / "requests.jsonl") if r["status"] >= 500}
    assert failed
    kept = {
        span["attributes"].get("correlation_id")
        for name in ("shop-1", "shop-2", "shop-canary")
        for span in read_jsonl(out / f"{name}-spans.jsonl")
        if span["kind"] == "SERVER" and span["attributes"].get("http.response.status_code") == 500
    }
    assert failed == kept
    assert len(failed) == _report(out)["error_traces"]["traces_kept"]
    for name in ("shop-1", "shop-2", "shop-canary"):
        # Kept, and saying why (a trace promoted as slow before it failed is an error trace).
        assert all(
            span["attributes"].get("obskit.sampling.rule")
            for span in read_jsonl(out / f"{name}-spans.jsonl")
        )


def test_failed_request_logs_include_flushed_debug_lines(demo_run: tuple[Path, str]) -> None:
    """The failed request's lines include held debug lines, flushed because its trace was kept."""
    out, _ = demo_run
    failed = _report(out)["failed_request"]
    assert "debug" in [line["level"] for line in failed["log_lines"]]
    access = [line for line in failed["log_lines"] if line.get("logger") == "obskit.access"]
    assert 500 in {line.get("status") for line in access}
    assert all(line["correlation_id"] == failed["request_id"] for line in failed["log_lines"])
    for name in ("shop-1", "shop-2", "shop-canary"):
        assert "tok_live_123456789" not in (out / f"{name}.log").read_text()


def test_deploy_marker_precedes_the_failure(demo_run: tuple[Path, str]) -> None:
    """The deploy marker of v2 is in deploys.log, stamped before the judge's first FAIL."""
    out, _ = demo_run
    marks = [
        line for line in read_jsonl(out / "deploys.log") if line.get("event") == "deployment.marked"
    ]
    assert 1 == len(marks)
    assert "2.0.0" == marks[0]["service_version"]
    first_fail = next(look for look in _looks(out) if look["verdict"] == "FAIL")
    assert parse_time(marks[0]["deployment.started"]) < first_fail["at"]


def test_guardrail_names_the_pool_of_the_tenant(demo_run: tuple[Path, str]) -> None:
    """The action item is a canary check on the pool wait of the slowed tenant's pool."""
    out, _ = demo_run
    actions = " ".join(item["action"] for item in _report(out)["guardrail"])
    assert "pool wait p99" in actions
    assert f"orders-{SLOWED}" in actions


# Rows of the incident timeline that say users are hurt or a resource saturates.
SYMPTOMS = ("symptom", "burn", "pending", "page", "saturation")


def test_postmortem_timeline_has_the_deploy_before_the_first_symptom(
    demo_run: tuple[Path, str],
) -> None:
    """The incident timeline (timeline.json, and the postmortem's Timeline table) shows the
    deploy of v2 first, then the symptoms; the report shows those very rows."""
    out, _ = demo_run
    timeline = json.loads((out / "timeline.json").read_text())
    kinds = [row["kind"] for row in timeline["rows"]]
    first_change = next(n for n, kind in enumerate(kinds) if kind in ("deploy", "marker"))
    first_symptom = next(n for n, kind in enumerate(kinds) if kind in SYMPTOMS)
    assert first_change < first_symptom
    rows = timeline["rows"]
    assert rows[first_change]["at"] <= rows[first_symptom]["at"]
    if timeline["first_symptom"]:
        assert rows[first_change]["at"] <= timeline["first_symptom"]["first"]
    assert any("2.0.0" in row["what"] for row in rows if row["kind"] in ("deploy", "marker"))
    table = (out / "postmortem.md").read_text().split("## Timeline", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| 20")]
    assert kinds == cells
    shown = _report(out)["aftermath"]["timeline"]["rows"]
    assert [(r["kind"], r["what"]) for r in rows] == [(r["kind"], r["what"]) for r in shown]


def test_burn_alerts_are_the_slo_rules_evaluated(demo_run: tuple[Path, str]) -> None:
    """Evaluating slo-rules.yml again over the recorded scrapes gives the alerts the report
    shows; the report names the page (owner, runbook, tiers); the slowed tenant burns after the
    deploy and recovers."""
    out, stdout = demo_run
    report = _report(out)
    after = report["aftermath"]
    groups = yaml.safe_load((out / "slo-rules.yml").read_text())["groups"]
    rows = list(read_jsonl(out / "scrapes.jsonl"))
    store = Store.from_directory(out, Story().interval)
    times = [float(r["at"]) for r in rows if r["instance"] == "shop-1"]
    alerts = [
        a for a in evaluate_rules(store, groups, times, after["scale"]) if a.name == "SLOBurn"
    ]
    started = rows[0]["at"] - rows[0]["t"]
    assert [a["tenant"] for a in after["alerts"]] == [a.labels.get("tenant_id", "") for a in alerts]
    assert [a["pending_t"] for a in after["alerts"]] == pytest.approx(
        [a.active_at - started for a in alerts], abs=0.01
    )
    page = after["page"]
    assert ("SLOBurn", "payments") == (page["alert"], page["owner"])
    assert page["runbook_url"].startswith("https://")
    assert page["runbook_url"] in stdout
    assert [14.4, 6.0] == [t["factor"] for t in page["tiers"]]
    for alert in after["alerts"]:
        assert ("payments", page["runbook_url"]) == (alert["owner"], alert["runbook_url"])
    # The tenant v2 slowed burns past the slower tier's factor over the short window, after
    # the deploy, and is back under it by the end.
    burns = {row["tenant"]: row for row in after["burn_short"]}
    mine = burns[SLOWED]
    assert mine["peak"] > page["tiers"][-1]["factor"]
    assert report["story"]["deployed_t"] < mine["peak_t"]
    assert mine["end"] < mine["peak"]  # the burn recovers after the rollback


def test_kept_traces_of_the_slowed_tenant_exist_on_v2(demo_run: tuple[Path, str]) -> None:
    """v2's span sink holds kept traces of the slowed tenant; v2's log lines (version 2.0.0)
    carry their trace ids."""
    out, _ = demo_run
    kept = {
        s["trace_id"]
        for s in read_jsonl(out / "shop-canary-spans.jsonl")
        if s["kind"] == "SERVER" and s["attributes"].get("tenant_id") == SLOWED
    }
    assert kept
    logged = {
        line.get("trace_id"): line.get("service_version")
        for line in read_jsonl(out / "shop-canary.log")
        if line.get("trace_id") in kept
    }
    assert kept == set(logged)
    assert {"2.0.0"} == set(logged.values())
