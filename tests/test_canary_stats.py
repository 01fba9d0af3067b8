"""The canary judge's statistics, on seeded simulations: valid under A/A, powerful where it must."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from canary_sim import Behaviour, draw_cell, interval, lognormal_buckets
from obskit.canary import stats
from obskit.canary.checks import standard_checks
from obskit.canary.judge import Judge, JudgeOptions

FAST = lognormal_buckets(0.05, 0.5)


def _judge(by: tuple[str, ...] = (), *, routes: bool = True, **options: object) -> Judge:
    specs = standard_checks(by=by, resources=False)
    if not routes:  # one route only: its per-route checks would repeat the aggregate ones
        specs = [dataclasses.replace(s, groupings=((),)) for s in specs if s.groupings[0] == ()]
    return Judge(specs, JudgeOptions(by=by, **options))  # type: ignore[arg-type]


def _look(
    judge: Judge,
    rng: random.Random,
    canary: dict[tuple[str, str], tuple[int, Behaviour]],
    baseline: dict[tuple[str, str], tuple[int, Behaviour]],
) -> None:
    c = {cell: draw_cell(rng, n, b) for cell, (n, b) in canary.items()}
    b = {cell: draw_cell(rng, n, beh) for cell, (n, beh) in baseline.items()}
    judge.observe(interval(judge.checks, c), interval(judge.checks, b))


def _failed(judge: Judge) -> list[tuple[str, dict[str, str]]]:
    return [(c.metric, c.segment) for c in judge.report().checks if c.decision == "FAIL"]


class TestEProcess:
    def test_zero_versus_thirty_errors_in_ten_thousand_is_overwhelming(self) -> None:
        """0 of 10,000 against 30 of 10,000 gives an e-value near 10^7 (Kayenta passes this)."""
        test = stats.RatioTest(1.0)
        test.update(30, 10_000, 0, 10_000)
        assert 1e6 < test.e_value < 1e8
        assert math.inf == test.ratio()

    def test_one_error_in_twenty_requests_is_no_evidence(self) -> None:
        """1 vs 0 errors in 20 requests per arm: E is about 1.4, far from any threshold."""
        test = stats.RatioTest(1.0)
        test.update(1, 20, 0, 20)
        assert 1.0 < test.e_value < 2.0

    def test_intervals_without_events_contribute_nothing(self) -> None:
        """An interval with no event in either arm leaves E where it was."""
        test = stats.RatioTest(1.2)
        test.update(0, 500, 0, 500)
        assert 1.0 == test.e_value
        test.update(3, 100, 1, 900)
        before = test.e_value
        test.update(0, 100, 0, 900)
        assert before == test.e_value

    def test_tolerance_below_one_is_refused(self) -> None:
        """The tolerated ratio r0 is at least 1 (a canary may not be required to be better)."""
        with pytest.raises(ValueError, match="r0"):
            stats.RatioTest(0.9)


class TestHolm:
    def test_step_down(self) -> None:
        """Holm rejects in order of p while p <= alpha / (remaining), then stops."""
        assert [True, False, True, False] == stats.holm([0.01, 0.04, 0.005, 0.5], 0.05)
        assert [False, False] == stats.holm([0.03, 0.04], 0.05)
        assert [True, True] == stats.holm([0.02, 0.04], 0.05)

    def test_bracket_takes_the_edges_around_the_quantile(self) -> None:
        """The boundaries are the edge the quantile falls under and the one below it."""
        edges = [0.1, 0.25, 0.5, math.inf]
        assert [0.25, 0.5] == stats.bracket(edges, [50, 95, 100, 100], 0.99)
        assert [0.1] == stats.bracket(edges, [99, 100, 100, 100], 0.99)
        assert [0.5] == stats.bracket(edges, [10, 20, 30, 100], 0.99)
        assert [] == stats.bracket(edges, [0, 0, 0, 0], 0.99)


class TestSimulations:
    def test_aa_over_1000_runs_of_20_looks_fails_at_most_five_percent(self) -> None:
        """Identical arms, judged at each of 20 looks, fail in at most 5% of 1,000 runs."""
        rng = random.Random(17)
        same = Behaviour(0.005, FAST)
        failures = 0
        for _ in range(1000):
            judge = _judge(routes=False)
            for _ in range(20):
                share = rng.uniform(0.05, 0.5)
                _look(
                    judge,
                    rng,
                    {("/checkout", ""): (int(1000 * share), same)},
                    {("/checkout", ""): (int(1000 * (1 - share)), same)},
                )
            # p-values use each e-process's running maximum: a FAIL at any earlier look is a
            # FAIL in the last report too, so one report per run counts every look.
            failures += judge.report().verdict == "FAIL"
        assert failures <= 50, failures

    def test_zero_versus_thirty_errors_fails_the_canary(self) -> None:
        """Baseline 0 errors of 10,000, canary 30 of 10,000: FAIL on the error rate."""
        judge = _judge()
        cumulative = [10_000] * len(FAST)
        specs = judge.checks
        canary = interval(specs, {("/pay", ""): (10_000, 30, cumulative)})
        baseline = interval(specs, {("/pay", ""): (10_000, 0, cumulative)})
        judge.observe(canary, baseline)
        report = judge.report()
        assert "FAIL" == report.verdict
        assert ("error rate", {}) in [(c.metric, c.segment) for c in report.failed()]

    def test_wider_spread_with_the_same_median_fails_on_p99(self) -> None:
        """Same median, wider spread: the p99 check fails, the error rate does not."""
        rng = random.Random(5)
        narrow = Behaviour(0.002, lognormal_buckets(0.1, 0.35))
        wide = Behaviour(0.002, lognormal_buckets(0.1, 0.7))
        judge = _judge()
        for _ in range(10):
            _look(judge, rng, {("/search", ""): (500, wide)}, {("/search", ""): (500, narrow)})
        failed = _failed(judge)
        assert ("latency p99", {}) in failed
        assert ("error rate", {}) not in failed

    def test_one_tenant_of_fifty_with_ten_times_the_errors_is_named(self) -> None:
        """One tenant's 10x errors fail the canary naming that tenant, though the aggregate
        moves less than 1.2x (inside its tolerance)."""
        rng = random.Random(11)
        good, bad = Behaviour(0.01, FAST), Behaviour(0.1, FAST)
        tenants = [f"tenant-{n:02d}" for n in range(50)]
        judge = _judge(by=("tenant_id",))
        for _ in range(10):
            canary = {("/checkout", t): (200, bad if t == "tenant-07" else good) for t in tenants}
            baseline = {("/checkout", t): (200, good) for t in tenants}
            _look(judge, rng, canary, baseline)
        report = judge.report()
        aggregate = next(c for c in report.checks if c.metric == "error rate" and not c.segment)
        assert aggregate.effect is not None
        assert aggregate.effect < 1.3
        assert "FAIL" == report.verdict
        failed = _failed(judge)
        assert ("error rate", {"tenant_id": "tenant-07"}) in failed
        assert [] == [s for m, s in failed if s.get("tenant_id") not in (None, "tenant-07")]
        assert any("tenant_id=tenant-07" in reason for reason in report.reasons)

    def test_aa_over_fifty_tenants_stays_within_the_family_wise_rate(self) -> None:
        """Identical arms over 50 tenants (150+ checks) fail in at most 5% of 100 runs."""
        rng = random.Random(23)
        same = Behaviour(0.01, FAST)
        tenants = [f"t{n}" for n in range(50)]
        failures = 0
        for _ in range(100):
            judge = _judge(by=("tenant_id",))
            for _ in range(4):
                cells = {("/checkout", t): (40, same) for t in tenants}
                _look(judge, rng, cells, dict(cells))
            failures += judge.report().verdict == "FAIL"
        assert failures <= 5, failures

    def test_twenty_requests_per_arm_is_inconclusive(self) -> None:
        """With 20 requests per arm the verdict is INCONCLUSIVE, never PASS."""
        rng = random.Random(3)
        same = Behaviour(0.05, FAST)
        judge = _judge()
        _look(judge, rng, {("/", ""): (20, same)}, {("/", ""): (20, same)})
        report = judge.report()
        assert "INCONCLUSIVE" == report.verdict
        assert any("too few" in reason for reason in report.reasons)

    def test_zero_canary_traffic_is_inconclusive_no_traffic(self) -> None:
        """No canary request at all: INCONCLUSIVE with the reason "no traffic"."""
        rng = random.Random(3)
        judge = _judge()
        _look(judge, rng, {}, {("/", ""): (5000, Behaviour(0.01, FAST))})
        report = judge.report()
        assert "INCONCLUSIVE" == report.verdict
        assert ["no traffic"] == report.reasons

    def test_enough_identical_traffic_passes_with_every_field_reported(self) -> None:
        """A/A with enough traffic passes; each check carries counts, values, effect, evidence."""
        rng = random.Random(8)
        same = Behaviour(0.01, FAST)
        judge = _judge()
        for _ in range(5):
            _look(judge, rng, {("/", ""): (1000, same)}, {("/", ""): (1000, same)})
        report = judge.report()
        assert "PASS" == report.verdict, report.table()
        row = next(c for c in report.as_json()["checks"] if c["metric"] == "latency p99")
        assert {"metric", "segment", "baseline", "canary", "effect", "evidence", "decision"} <= set(
            row
        )
        assert 0 < row["baseline"]["value"] < 1
        assert row["reason"]

    def test_differing_bucket_layouts_are_inconclusive(self) -> None:
        """Arms whose histograms have different boundaries are not compared on latency."""
        judge = _judge()
        specs = judge.checks
        canary = interval(specs, {("/", ""): (1000, 5, [500] * 5 + [1000] * 10)})
        baseline = interval(specs, {("/", ""): (1000, 5, [500] * 5 + [1000] * 10)})
        for (quantity, _), data in canary.items():
            if quantity.labels == ("le",):
                for key in [k for k in data if k[-1] == "0.25"]:
                    data[(*key[:-1], "0.3")] = data.pop(key)  # type: ignore[attr-defined]
        judge.observe(canary, baseline)
        judge.observe(canary, baseline)
        p99 = next(c for c in judge.report().checks if c.metric == "latency p99" and not c.segment)
        assert "INCONCLUSIVE" == p99.decision
        assert "layouts differ" in p99.reason
