"""The PromQL builder: its expressions parse and answer correctly in a real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import require_binary
from obskit._yaml import dump
from obskit.metrics import promql
from obskit.metrics.promql import Matcher, Selector

DURATION = "http_server_request_duration_seconds"


def _promtool_test(
    tmp_path: Path, series: list[dict[str, str]], tests: list[dict[str, Any]]
) -> None:
    """Run ``promtool test rules`` with expression tests over ``series`` (one sample a minute)."""
    promtool = require_binary("promtool")
    (tmp_path / "rules.yml").write_text(dump({"groups": []}))
    spec = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yml").write_text(dump(spec))
    result = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_quote_escapes_what_promql_strings_escape() -> None:
    """Backslashes, double quotes and newlines in a label value are escaped."""
    assert r'"a\"b\\c\nd"' == promql.quote('a"b\\c\nd')


def test_selector_renders_its_matchers_in_order() -> None:
    """A selector is the metric and its matchers, values quoted."""
    sel = promql.selector(DURATION, {"http_route": "/a"}).matching(
        Matcher("http_response_status_code", "=~", "5..")
    )
    expected = f'{DURATION}{{http_route="/a",http_response_status_code=~"5.."}}'
    assert expected == str(sel)
    assert DURATION == str(Selector(DURATION))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "1m"), (300, "5m"), (3600, "1h"), (90, "90s"), (86400 * 30, "30d"), (86400 * 14, "2w")],
)
def test_durations_use_their_largest_exact_unit(seconds: int, text: str) -> None:
    """A window in seconds becomes the PromQL duration with the largest unit it divides."""
    assert text == promql.duration(seconds)


@pytest.mark.parametrize("bad", [0, -5, 1.5, float("inf")])
def test_durations_refuse_what_promql_cannot_say(bad: float) -> None:
    """Zero, negative, fractional or infinite windows are a ValueError."""
    with pytest.raises(ValueError):
        promql.duration(bad)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Selector("not a name"),
        lambda: Matcher("0bad", "=", "x"),
        lambda: Matcher("ok", "==", "x"),
        lambda: Matcher("ok", "=~", "("),
        lambda: promql.sum_by("x", ["bad-label"]),
        lambda: promql.histogram_quantile(1.5, Selector("x_bucket"), 60),
        lambda: promql.histogram_quantile(0.5, Selector("x_count"), 60),
    ],
)
def test_malformed_parts_are_refused(bad: Any) -> None:
    """Names, operators and regular expressions PromQL would reject raise ValueError here."""
    with pytest.raises(ValueError):
        bad()


def test_bucket_edges_are_spelled_as_the_exposition_spells_them() -> None:
    """``le`` values match prometheus_client's text: 1.0 not 1, +Inf for infinity."""
    assert ["0.005", "0.25", "1.0", "10.0", "+Inf"] == [
        promql.le(e) for e in (0.005, 0.25, 1, 10, float("inf"))
    ]


def test_expressions_answer_correctly_in_promtool(tmp_path: Path) -> None:
    """Rate, error ratio and a bucket quantile, built here, give the expected values in promtool."""
    ok = f'{DURATION}_count{{http_route="/a",http_response_status_code="200"}}'
    bad = f'{DURATION}_count{{http_route="/a",http_response_status_code="500"}}'
    odd = f'{DURATION}_count{{http_route="/q\\"x",http_response_status_code="200"}}'
    buckets = [
        {"series": f'{DURATION}_bucket{{http_route="/a",le="{edge}"}}', "values": f"0+{n}x10"}
        for edge, n in (("0.1", 50), ("0.25", 90), ("1.0", 99), ("+Inf", 100))
    ]
    series = [
        {"series": ok, "values": "0+90x10"},
        {"series": bad, "values": "0+10x10"},
        {"series": odd, "values": "0+6x10"},
        *buckets,
    ]
    count = Selector(f"{DURATION}_count")
    by_route = promql.sum_by(promql.rate(count, 300), ["http_route"])
    errors = promql.sum_by(
        promql.rate(count.matching(Matcher("http_response_status_code", "=~", "5..")), 300),
        ["http_route"],
    )
    p90 = promql.histogram_quantile(0.9, Selector(f"{DURATION}_bucket"), "5m", ["http_route"])
    tests = [
        {
            "expr": by_route,
            "eval_time": "10m",
            "exp_samples": [
                {"labels": '{http_route="/a"}', "value": 100 / 60},
                {"labels": '{http_route="/q\\"x"}', "value": 6 / 60},
            ],
        },
        {
            "expr": promql.ratio(errors, by_route),
            "eval_time": "10m",
            "exp_samples": [{"labels": '{http_route="/a"}', "value": 0.1}],
        },
        {
            "expr": p90,
            "eval_time": "10m",
            "exp_samples": [{"labels": '{http_route="/a"}', "value": 0.25}],
        },
        {
            "expr": promql.sum_by(
                promql.increase(count.where(http_route='/q"x'), "10m"), ["http_route"]
            ),
            "eval_time": "10m",
            "exp_samples": [{"labels": '{http_route="/q\\"x"}', "value": 60}],
        },
    ]
    _promtool_test(tmp_path, series, tests)


def test_aggregations_and_comparisons_answer_correctly_in_promtool(tmp_path: Path) -> None:
    """``aggregate`` and ``compare`` build expressions promtool evaluates as meant, and refuse
    operators PromQL does not have."""
    series = [
        {"series": 'obskit_build_info{instance="a",service_version="1"}', "values": "1x10"},
        {"series": 'obskit_build_info{instance="b",service_version="2"}', "values": "1x10"},
        {"series": 'slo_ratio{slo="x"}', "values": "0.2x10"},
    ]
    by_version = promql.aggregate("count", "obskit_build_info", ["service_version"])
    tests = [
        {
            "expr": by_version,
            "eval_time": "5m",
            "exp_samples": [
                {"labels": '{service_version="1"}', "value": 1},
                {"labels": '{service_version="2"}', "value": 1},
            ],
        },
        {
            "expr": promql.compare("slo_ratio / 0.01", ">", "14.4"),
            "eval_time": "5m",
            "exp_samples": [{"labels": '{slo="x"}', "value": 20}],
        },
        {"expr": promql.compare("slo_ratio", ">", 0.5), "eval_time": "5m", "exp_samples": []},
    ]
    _promtool_test(tmp_path, series, tests)
    with pytest.raises(ValueError, match="aggregation"):
        promql.aggregate("median", "x")
    with pytest.raises(ValueError, match="comparison"):
        promql.compare("x", "=>", 1.0)
    with pytest.raises(ValueError, match="finite"):
        promql.compare("x", ">", float("nan"))
