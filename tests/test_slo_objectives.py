"""SLO declarations: the burn-rate math, exact decimals, validation and the strict parsers."""

from __future__ import annotations

import decimal
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obskit import slo
from obskit.slo import _signals
from obskit.slo.burn import DEFAULT_TIERS, Tier, exact, parse_fraction, text
from obskit.slo.indicators import HttpAvailability

SPECS = Path(__file__).parent / "slo"
DAY = 86400


def _factors(days: int) -> list[str]:
    return [text(t.factor(days * DAY)) for t in DEFAULT_TIERS]


def test_thirty_days_give_the_workbook_factors_exactly() -> None:
    """30 days: 14.4, 6, 3 and 1, written digit for digit."""
    assert ["14.4", "6", "3", "1"] == _factors(30)


def test_twenty_eight_days_scale_the_factors() -> None:
    """28 days: 13.44, 5.6, 2.8 and 0.9333… (14/15, rounded far past a float's digits)."""
    factors = _factors(28)
    assert ["13.44", "5.6", "2.8"] == factors[:3]
    assert factors[3].startswith("0.93333333333333")
    assert Fraction(14, 15) == DEFAULT_TIERS[3].factor(28 * DAY)


def test_thresholds_are_exact_decimals() -> None:
    """A 99.9% target's thresholds are 0.0144 and 0.001, never 0.000999…9432."""
    budget = 1 - parse_fraction("99.9%")
    assert "0.001" == text(budget)
    assert ["0.0144", "0.006", "0.003", "0.001"] == [
        text(t.threshold(30 * DAY, budget)) for t in DEFAULT_TIERS
    ]
    assert Fraction(999, 1000) == parse_fraction(0.999)  # a float is read by its repr


@given(
    days=st.integers(min_value=3, max_value=400),
    share=st.fractions(min_value=Fraction(1, 1000), max_value=1, max_denominator=1000),
)
def test_factor_spends_the_share_over_the_long_window(days: int, share: Fraction) -> None:
    """For any period and share, factor x long window / period is exactly the share spent."""
    tier = Tier("t", "page", share, 3600, 300)
    factor = tier.factor(days * DAY)
    assert share == factor * 3600 / (days * DAY)
    written = Fraction(exact(factor))
    rest = factor.denominator
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    if rest == 1:
        assert factor == written  # a terminating expansion is written whole
    else:
        assert abs(written - factor) <= factor * Fraction(1, 10**16)


def test_latency_threshold_must_be_a_bucket_edge() -> None:
    """A threshold between edges is refused, and the message lists the edges that exist."""
    with pytest.raises(ValueError, match=r"0\.3 s is not a bucket edge .* 0\.25, 0\.5"):
        slo.http_latency(0.3, routes=("/checkout",))
    assert 0.25 == slo.http_latency(0.25).threshold


def test_objectives_refuse_what_cannot_work() -> None:
    """Bad targets, periods, names and breakdowns fail at declaration with the field named."""
    good = {"name": "ok", "indicator": HttpAvailability(), "target": "99%", "owner": "team"}
    for change, message in [
        ({"target": "100%"}, "target is a share in"),
        ({"target": 1.5}, "target is a share in"),
        ({"period": "36h"}, "whole number of days"),
        ({"name": "Bad_Name"}, "RFC 1123"),
        ({"tiers": ("pager",)}, "unknown tier 'pager'"),
        ({"indicator": slo.FunctionAvailability(("f",)), "by_tenant": True}, "no tenant_id label"),
        ({"min_events": -1}, "not negative"),
    ]:
        with pytest.raises(slo.SpecError, match=message):
            slo.Objective(**{**good, **change})


def test_latency_edges_come_from_the_catalogue() -> None:
    """Bucket edges checked for a threshold are the catalogue's, for HTTP and @red histograms."""
    from obskit.metrics import catalogue

    http = catalogue.HTTP_SERVER_DURATION
    assert http.buckets == _signals.histogram_edges(http.bucket)
    assert catalogue.FUNCTION_DURATION.buckets == _signals.histogram_edges(
        catalogue.FUNCTION_DURATION.name
    )
    assert _signals.histogram_edges("my_own_histogram_seconds") is None
    assert 0.0001 == slo.function_latency(0.0001, ("f",)).threshold


def test_short_form_reads_the_shop(tmp_path: Path) -> None:
    """The short form gives objectives with defaults applied and targets read exactly."""
    sets = slo.load(SPECS / "shop.yml")
    availability, latency = sets.objectives
    assert "shop" == sets.service
    assert Fraction(999, 1000) == availability.target
    assert availability.by_tenant
    assert 20 == availability.min_events
    assert {"job": "shop"} == latency.where
    assert ("catalog", 28 * DAY, 0.25) == (
        latency.owner,
        latency.period,
        latency.indicator.threshold,
    )  # type: ignore[attr-defined]
    assert "https://runbooks.example.com/slo/checkout-availability.md" == sets.runbook_url(
        availability
    )


def test_openslo_reads_refs_policies_and_thresholds() -> None:
    """OpenSLO: indicatorRef, DataSource refs, policies inline and by ref, threshold latency."""
    ledger, search = slo.load(SPECS / "openslo.yml").objectives
    assert ("ledger", 7 * DAY, Fraction(995, 1000)) == (ledger.owner, ledger.period, ledger.target)
    assert ["10", "2"] == [text(t.factor(ledger.period)) for t in ledger.tiers]
    assert [("page", 3600, 300, 120), ("ticket", DAY, 7200, 3600)] == [
        (t.severity, t.long, t.short, t.hold) for t in ledger.tiers
    ]
    assert ("scale the ledger workers", "degrade: queue writes") == ledger.mitigations
    assert ("search", 0.1, Fraction(995, 1000)) == (
        search.owner,
        search.indicator.threshold,  # type: ignore[attr-defined]
        search.target,
    )
    assert DEFAULT_TIERS == search.tiers


def _error(tmp_path: Path, body: str) -> str:
    path = tmp_path / "spec.yml"
    path.write_text(textwrap.dedent(body))
    with pytest.raises(slo.SpecError) as info:
        slo.load(path)
    return str(info.value)


_SLO = """\
    apiVersion: openslo/v1
    kind: SLO
    metadata: {{name: a, labels: {{team: t}}}}
    spec:
      service: s
      budgetingMethod: {method}
      indicator:
        metadata: {{name: i}}
        spec:
          ratioMetric:
            counter: true
            bad: {{metricSource: {{type: Prometheus, spec: {{query: 'e_total'}}}}}}
            total: {{metricSource: {{type: Prometheus, spec: {{query: '{total}'}}}}}}
      objectives:
        - {objective}
    """


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"method": "Timeslices"}, "document 1, line 6: spec.budgetingMethod", "Occurrences"),
        ({"objective": "target: 1.2"}, "spec.objectives[0].target", "in [0, 1)"),
        ({"objective": "{target: 0.9, targetPercent: 90}"}, "spec.objectives[0]", "exactly one"),
        ({"objective": "{target: 0.9, extra: 1}"}, "spec.objectives[0].extra", "unknown field"),
        ({"total": "rate(x[5m])"}, "spec.indicator.spec.ratioMetric.total", "series selector"),
    ],
)
def test_openslo_errors_name_file_document_line_and_path(
    tmp_path: Path, fields: dict[str, str], where: str, message: str
) -> None:
    """Each refusal names the file, the document, the line, the field path and what is read."""
    values = {"method": "Occurrences", "objective": "target: 0.99", "total": "t_total", **fields}
    text_ = _error(tmp_path, _SLO.format(**values))
    assert str(tmp_path / "spec.yml") in text_
    assert where in text_
    assert message in text_


def test_short_form_errors_are_precise(tmp_path: Path) -> None:
    """Duplicate keys, a second indicator, a missing owner and a non-edge threshold say where."""
    head = "apiVersion: obskit/v1\nkind: Objectives\nobjectives:\n"
    cases = [
        ("  - {name: a, target: 0.9, owner: t, owner: u, business: {event: e}}\n", "given twice"),
        ("  - {name: a, target: 0.9, owner: t, business: {event: e}, ratio: {total: x}}\n",
         "exactly one indicator"),
        ("  - {name: a, target: 0.9, business: {event: e}}\n", "objectives[0]: missing owner"),
        ("  - {name: a, target: 0.9, owner: t, latency: {threshold: 0.3}}\n",
         "objectives[0].latency.threshold: 0.3 s is not a bucket edge"),
        ("  - {name: a, target: 0.9, owner: t, business: {event: e}, period: 12h}\n",
         "whole number of days"),
    ]  # fmt: skip
    for body, message in cases:
        assert message in _error(tmp_path, head + body)


def test_python_spec_loads_module_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    """``module:attribute`` loads Python objectives; a missing attribute is a clear error."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sets = slo.load("slo_objectives:ORDERS")
    assert ["orders-success", "jobs-delivered", "api-errors"] == [o.name for o in sets.objectives]
    with pytest.raises(slo.SpecError, match="has no attribute NOPE"):
        slo.load("slo_objectives:NOPE")


def test_decimal_exactness_survives_the_yaml_writer() -> None:
    """The YAML writer keeps a Decimal threshold's digits."""
    from obskit._yaml import dump

    assert "t: 0.0144\n" == dump({"t": decimal.Decimal("0.0144")})
