"""The docs' queries, built from the catalogue: right in promtool, the same as docs/metrics.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import require_binary
from obskit._yaml import dump
from obskit.metrics import catalogue, promql, queries

ROOT = Path(__file__).resolve().parents[1]
HTTP = catalogue.HTTP_SERVER_DURATION


def _series(family_series: str, labels: dict[str, str], per_minute: float) -> dict[str, str]:
    """One recorded counter series growing by ``per_minute`` each minute for ten minutes."""
    text = ",".join(f"{k}={promql.quote(v)}" for k, v in labels.items())
    return {"series": f"{family_series}{{{text}}}", "values": f"0+{per_minute:g}x10"}


def _http(route: str, tenant: str, error: str, edges: dict[float, float]) -> list[dict[str, str]]:
    """Count, buckets (per minute, cumulative, by bound) of one HTTP label set."""
    labels = {
        "http_request_method": "GET",
        "url_scheme": "https",
        "http_route": route,
        "http_response_status_code": "500" if error else "200",
        "error_type": error,
        "tenant_id": tenant,
    }
    total = edges[float("inf")]
    out = [_series(HTTP.count, labels, total)]
    for bound in HTTP.buckets:
        below = max((n for edge, n in edges.items() if edge <= bound), default=0.0)
        out.append(_series(HTTP.bucket, {**labels, "le": catalogue.le(bound)}, below))
    out.append(_series(HTTP.bucket, {**labels, "le": "+Inf"}, total))
    return out


INF = float("inf")
WEIRD = '/we"ird\\route'  # a route template with a quote and a backslash: escaping matters
# Counts a minute chosen so that every rate is a multiple of 1/4 (exact in binary): promtool
# compares values exactly, and the expected ones below are computed in Prometheus' own order.
SERIES = [
    # /pay for acme: 60 a minute (half under 100 ms, all under 250 ms), 15 failures a minute.
    *_http("/pay", "acme", "", {0.1: 30, 0.25: 60, INF: 60}),
    *_http("/pay", "acme", "shop.Declined", {0.25: 15, INF: 15}),
    # /pay for globex: 30 a minute, all slow (1-2.5 s), none failing.
    *_http("/pay", "globex", "", {2.5: 30, INF: 30}),
    *_http(WEIRD, "acme", "", {0.005: 15, INF: 15}),
    _series(catalogue.HTTP_SERVER_ACTIVE.name, {"http_request_method": "GET", "url_scheme": "http"}, 0),  # noqa: E501
    _series(catalogue.FUNCTION_CALLS.sample, {"function": "charge", "module": "shop", "result": "ok", "error_type": ""}, 45),  # noqa: E501
    _series(catalogue.FUNCTION_CALLS.sample, {"function": "charge", "module": "shop", "result": "error", "error_type": "shop.Declined"}, 15),  # noqa: E501
]  # fmt: skip


def _expr_test(expr: str, samples: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    return {
        "expr": expr,
        "eval_time": "10m",
        "exp_samples": [
            {"labels": "{" + ",".join(f"{k}={promql.quote(v)}" for k, v in labels.items()) + "}",
             "value": value}
            for labels, value in samples
        ],
    }  # fmt: skip


def test_queries_answer_correctly_in_promtool(tmp_path: Path) -> None:
    """Each query, built from the catalogue, gives the expected values over recorded series."""
    promtool = require_binary("promtool")
    pay = {"http_route": "/pay"}
    acme, globex = {"tenant_id": "acme"}, {"tenant_id": "globex"}
    tests = [
        _expr_test(
            queries.rate(by=("http_route",)),
            [({"http_route": "/pay"}, 1.75), ({"http_route": WEIRD}, 0.25)],
        ),
        _expr_test(queries.rate(where={"http_route": WEIRD}), [({}, 0.25)]),
        _expr_test(queries.error_ratio(by=("http_route",), where=pay), [(pay, 0.25 / 1.75)]),
        # A tenant without failures has no numerator: PromQL leaves it out of the ratio.
        _expr_test(queries.error_ratio(by=("tenant_id",), where=pay), [(acme, 0.25 / 1.25)]),
        # acme: 0.5/s under 0.1 s and 1.25/s in all: the median's rank 0.625 falls in
        # (0.1, 0.25], interpolated as Prometheus does (start + width * (rank / count)).
        _expr_test(
            queries.quantile(0.5, by=("tenant_id",), where=pay),
            [(acme, 0.1 + (0.25 - 0.1) * (0.125 / 0.75)), (globex, 1.75)],
        ),
        _expr_test(queries.share_within(0.25, where=pay), [({}, 1.25 / 1.75)]),
        _expr_test(queries.in_flight(by=("url_scheme",)), [({"url_scheme": "http"}, 0.0)]),
        _expr_test(
            queries.rate(catalogue.FUNCTION_CALLS, by=("function",)),
            [({"function": "charge"}, 1.0)],
        ),
        _expr_test(
            queries.errors_by_type(),
            [({"function": "charge", "error_type": "shop.Declined"}, 0.25)],
        ),
    ]
    (tmp_path / "rules.yml").write_text(dump({"groups": []}))
    spec = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": SERIES, "promql_expr_test": tests}],
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


@pytest.mark.parametrize(
    "bad",
    [
        lambda: queries.rate(by=("http_rout",)),
        lambda: queries.rate(where={"tenant": "acme"}),
        lambda: queries.error_ratio(catalogue.EVENT_LOOP_LAG),
        lambda: queries.quantile(0.5, catalogue.FUNCTION_CALLS),
        lambda: queries.share_within(0.3),
        lambda: queries.in_flight(HTTP),
        lambda: queries.rate(catalogue.PROCESS_THREADS),
    ],
)
def test_what_a_family_cannot_answer_is_refused(bad: Any) -> None:
    """A label the family lacks, a threshold that is no bucket bound, a wrong type: ValueError."""
    with pytest.raises(ValueError):
        bad()


def test_unknown_label_error_names_the_family_labels() -> None:
    """The error for a mistyped label lists the labels the family has."""
    with pytest.raises(ValueError, match="http_route") as raised:
        queries.rate(by=("http_rout",))
    assert "http_server_request_duration_seconds" in str(raised.value)


def test_static_and_target_labels_are_accepted() -> None:
    """@red's static labels, Prometheus' job/instance and the worker pid may be used."""
    assert "tier" in queries.rate(catalogue.FUNCTION_CALLS, by=("tier",))
    assert "instance" in queries.rate(by=("instance",))
    assert "pid" in queries.in_flight(catalogue.PROCESS_THREADS, by=("pid",))


def test_bucket_edges_have_one_spelling() -> None:
    """promql.le and the exposition's le (catalogue.le) agree on every bound obskit uses."""
    bounds = {b for family in catalogue.FAMILIES for b in family.buckets}
    assert [catalogue.le(b) for b in sorted(bounds)] == [promql.le(b) for b in sorted(bounds)]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


DOCUMENTED = [
    queries.rate(by=("http_route",)),
    queries.error_ratio(by=("http_route",)),
    queries.error_ratio(by=("tenant_id",)),
    queries.quantile(0.99, by=("http_route",)),
    queries.in_flight(),
    queries.share_within(0.25, by=("http_route",)),
    queries.rate(catalogue.FUNCTION_CALLS, by=("function",)),
    queries.errors_by_type(),
    queries.quantile(0.95, catalogue.FUNCTION_DURATION, by=("function",)),
    queries.in_flight(catalogue.FUNCTION_ACTIVE, by=("function",)),
]


@pytest.mark.parametrize("expr", DOCUMENTED)
def test_docs_show_what_the_builder_builds(expr: str) -> None:
    """docs/metrics.md shows each RED query exactly as obskit.metrics.queries builds it."""
    assert _flat(expr) in _flat((ROOT / "docs" / "metrics.md").read_text())
