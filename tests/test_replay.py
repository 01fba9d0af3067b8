"""obskit.replay answers PromQL and evaluates rule files as Prometheus does (promtool agrees)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import require_binary
from obskit._prometheus import PrometheusError
from obskit._yaml import dump
from obskit.demo import burn
from obskit.replay.client import RecordedPrometheus
from obskit.replay.promql import QueryError, evaluate, instant
from obskit.replay.rules import evaluate_rules
from obskit.replay.store import Store, parse_exposition

MINUTES = 90
EDGES = ("0.1", "0.25", "0.5", "0.75", "1", "+Inf")
# Per minute, requests per tenant and how many of them are slower than 0.75 s (and 0.25 s).
TENANTS = {"acme": (30, 0, 1), "initech": (20, 0, 0)}


def _slow_share(tenant: str, minute: int) -> float:
    # initech's checkouts get slow from minute 30 to minute 60.
    return 0.4 if tenant == "initech" and 30 <= minute < 60 else 0.0


def _series() -> dict[tuple[tuple[str, str], ...], list[float]]:
    """Cumulative counter values per minute (plus a counter that resets at minute 40)."""
    out: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for tenant, (per_minute, _, _) in TENANTS.items():
        counts = dict.fromkeys(EDGES, 0.0)
        rows: dict[str, list[float]] = {edge: [] for edge in EDGES}
        totals: list[float] = []
        for minute in range(MINUTES):
            slow = round(per_minute * _slow_share(tenant, minute))
            fast = per_minute - slow
            for edge in EDGES:
                counts[edge] += fast if edge in ("0.25", "0.5", "0.75", "1", "+Inf") else fast // 2
                if edge in ("1", "+Inf"):
                    counts[edge] += slow
                rows[edge].append(counts[edge])
            totals.append(counts["+Inf"])
        base = (("http_route", "/checkout"), ("instance", "a"), ("job", "shop"))
        for edge in EDGES:
            labels = (("__name__", "http_server_request_duration_seconds_bucket"), *base)
            out[(*labels, ("le", edge), ("tenant_id", tenant))] = rows[edge]
        labels = (("__name__", "http_server_request_duration_seconds_count"), *base)
        out[(*labels, ("tenant_id", tenant))] = totals
    resets = [float(m * 3 if m < 40 else (m - 40) * 3 + 1) for m in range(MINUTES)]
    out[(("__name__", "jobs_total"), ("instance", "a"), ("job", "shop"))] = resets
    return out


def _store(series: dict[tuple[tuple[str, str], ...], list[float]]) -> Store:
    store = Store(60.0)
    for minute in range(MINUTES):
        samples = {
            tuple(sorted(kv for kv in labels if kv[0] not in ("job", "instance"))): values[minute]
            for labels, values in series.items()
        }
        store.add("shop", "a", minute * 60.0, samples)
    store.close()
    return store


def _text(labels: tuple[tuple[str, str], ...]) -> str:
    name = dict(labels).get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
    return f"{name}{{{rest}}}"


QUERIES = (
    "sum by (tenant_id) (rate(http_server_request_duration_seconds_count[5m]))",
    'sum by (tenant_id) (increase(http_server_request_duration_seconds_bucket{le="0.75"}[5m]))',
    "histogram_quantile(0.99, sum by (le, tenant_id) (rate("
    "http_server_request_duration_seconds_bucket[5m])))",
    "increase(jobs_total[10m])",
    "rate(jobs_total[3m])",
    "max_over_time(jobs_total[10m])",
    "avg_over_time(jobs_total[7m30s])",
    "last_over_time(jobs_total[10m]) / 3",
    "sum by (tenant_id) (rate(http_server_request_duration_seconds_count[5m])) - "
    'sum by (tenant_id) (rate(http_server_request_duration_seconds_bucket{le="0.75"}[5m]))',
    "sum by (tenant_id) (rate(http_server_request_duration_seconds_count[5m])) > 0.4",
    'absent(nothing_total{job="shop"})',
    "count(jobs_total) and on () vector(1)",
    "sum(jobs_total) or vector(0) * sum(nothing_total)",
)


# promtool compares floats exactly, and a sum in another order differs in the last bit: both
# sides are compared rounded to 1e-9, as PromQL's round() does it.
NEAREST = 1e-9


def _round(value: float) -> float:
    inverse = 1.0 / NEAREST
    return math.floor(value * inverse + 0.5) / inverse


def _samples(value: Any) -> list[dict[str, Any]]:
    """Expected samples of ``round(query, 1e-9)`` (round() drops the metric name)."""
    out = []
    for labels, v in value:
        if math.isnan(v):
            continue
        kept = tuple(sorted((k, x) for k, x in labels.items() if k != "__name__"))
        out.append({"labels": _text(kept) if kept else "{}", "value": _round(v)})
    return out


def _test(query: str, minute: int, value: Any) -> dict[str, Any]:
    return {
        "expr": f"round({query}, {NEAREST:g})",
        "eval_time": f"{minute}m",
        "exp_samples": _samples(value),
    }


def test_queries_and_rules_agree_with_promtool(tmp_path: Path) -> None:
    """For every query at several times, and for the demo objective's rules (recorded series and
    ALERTS), promtool's own evaluation of the same input equals obskit.replay's."""
    promtool = require_binary("promtool")
    series = _series()
    store = _store(series)
    tests: list[dict[str, Any]] = []
    for minute in (12, 35, 41, 50, 75):
        at = minute * 60.0
        for query in QUERIES:
            tests.append(_test(query, minute, instant(store, query, at)))
    groups = burn.rule_groups()
    evaluate_rules(store, groups, [m * 60.0 for m in range(MINUTES)])
    for minute in (20, 33, 36, 45, 62, 70):
        for query in (
            'slo:sli_error:ratio_rate5m{slo="checkout-latency"}',
            'slo:sli_error:ratio_rate1h{slo="checkout-latency"}',
            'ALERTS{alertname="SLOBurn"}',
        ):
            found = instant(store, query, minute * 60.0)
            tests.append(_test(query, minute, found))
    assert any(t["exp_samples"] for t in tests if "ALERTS" in t["expr"])  # the burn pages
    rules = tmp_path / "rules.yml"
    rules.write_text(dump({"groups": groups}))
    input_series = [
        {"series": _text(labels), "values": " ".join(f"{v:g}" for v in values)}
        for labels, values in series.items()
    ]
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [
                    {"interval": "1m", "input_series": input_series, "promql_expr_test": tests}
                ],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert 0 == result.returncode, result.stdout[-4000:] + result.stderr[-2000:]


def test_a_series_gone_from_a_scrape_is_stale() -> None:
    """A series missing from a later scrape, or a target no longer scraped, stops answering."""
    store = Store(1.0)
    store.add("shop", "a", 0.0, parse_exposition('x{k="1"} 1\nx{k="2"} 2\n'))
    store.add("shop", "a", 1.0, parse_exposition('x{k="1"} 1\n'))
    store.add("shop", "b", 1.0, parse_exposition("y 5\n"))
    store.add("shop", "a", 2.0, parse_exposition('x{k="1"} 1\n'))
    store.close()
    assert 1 == len(instant(store, "x", 1.5))
    assert [] == instant(store, "y", 2.5)  # target b was last scraped at 1.0
    assert [({}, 2.0)] == instant(store, 'count(x{k="1"}) + 1', 1.5)


def test_unsupported_queries_say_what_is_not_supported() -> None:
    """Subqueries, offset and group_left raise QueryError naming them; the client maps it."""
    store = Store(1.0)
    for query, words in (
        ("rate(x[5m])[10m:1m]", "subqueries"),
        ("x offset 5m", "offset"),
        ("a / on (k) group_left b", "group_left"),
        ("predict_linear(x[5m], 60)", "predict_linear"),
    ):
        with pytest.raises(QueryError, match=words):
            evaluate(store, query, 0.0)
    with pytest.raises(PrometheusError, match="offset"):
        RecordedPrometheus(store).query("x offset 5m", 0.0)


def test_scale_shrinks_the_windows() -> None:
    """With scale 60, [5m] over samples a second apart reads as rate over five minutes does."""
    store = Store(1.0)
    for second in range(20):
        store.add("shop", "a", float(second), {(("__name__", "c_total"),): second * 2.0})
    store.close()
    ((labels, value),) = instant(store, "increase(c_total[5m])", 19.0, scale=60.0)
    assert {"instance": "a", "job": "shop"} == labels
    assert 10.0 == pytest.approx(value)
