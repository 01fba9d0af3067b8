"""The incident timeline's pieces without Prometheus: the departure rule, times, logs, drafts."""

from __future__ import annotations

import io
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from obskit import _times as times
from obskit.cli import main
from obskit.incident import (
    changes,
    departures,
    detection,
    exemplars,
    logs,
    postmortem,
    render,
    signals,
)
from obskit.incident.departures import Counts
from obskit.incident.signals import Movement, Window
from obskit.incident.timeline import Timeline
from obskit.metrics.promql import Matcher
from slo_support import check_promql

T0 = 1_780_000_000.0


# --- the departure rule --------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n", "p"), [(0, 5, 0.1), (3, 10, 0.02), (7, 20, 0.3), (20, 20, 0.5)])
def test_binomial_tail_is_exact(k: int, n: int, p: float) -> None:
    """The tail summed in log space equals the direct sum of binomial terms."""
    direct = sum(math.comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(k, n + 1))
    assert direct == pytest.approx(departures.binomial_tail(k, n, p), rel=1e-9)


def _intervals(shares: list[tuple[int, int]], start: float = T0) -> list[Counts]:
    return [Counts(start + 2 * (k + 1), n, bad) for k, (n, bad) in enumerate(shares)]


def test_an_error_burst_departs_where_it_starts_and_recovers() -> None:
    """From a clean band, a burst of all-failing intervals departs at its first interval and is
    back within band at the end of its last one."""
    series = _intervals([(10, 0)] * 5 + [(10, 10)] * 4 + [(10, 0)] * 5)
    found = departures.count_departure(series, 0, 200, start=T0)
    assert found is not None
    assert series[5].at == found.first
    assert 1.0 == found.first_value
    assert 0.0 == found.baseline
    assert series[8].at == found.recovered
    assert (40, 40, 4) == (found.bad, found.events, found.intervals)


def test_one_blip_is_not_a_symptom() -> None:
    """A single departing interval that the next one does not confirm is not a departure."""
    series = _intervals([(10, 0)] * 3 + [(10, 10)] + [(10, 0)] * 6)
    assert departures.count_departure(series, 0, 200, start=T0) is None


def test_fewer_than_three_bad_events_never_depart() -> None:
    """Two errors in two requests, twice, stay within band (MIN_BAD is 3)."""
    series = _intervals([(2, 2), (2, 2), (2, 2)])
    assert departures.count_departure(series, 0, 1000, start=T0) is None


def test_a_noisy_baseline_does_not_depart_by_chance() -> None:
    """2% errors at random in 300 segments x 30 intervals of 20 requests: no false departure."""
    rng = random.Random(18)
    false = 0
    for _ in range(300):
        series = [
            Counts(T0 + k, 20, sum(rng.random() < 0.02 for _ in range(20))) for k in range(30)
        ]
        baseline = sum(rng.random() < 0.02 for _ in range(600))
        false += departures.count_departure(series, baseline, 600, start=T0 - 1) is not None
    assert 0 == false


def test_a_doubling_of_a_high_error_rate_departs() -> None:
    """10% -> 30% errors at 100 requests an interval is caught (not hidden by a high band)."""
    series = _intervals([(100, 10)] * 5 + [(100, 30)] * 5)
    found = departures.count_departure(series, 100, 1000, start=T0)
    assert found is not None
    assert series[5].at == found.first
    assert 0.1 == pytest.approx(found.baseline)


def test_levels_depart_above_one_and_a_half_times_the_baseline_maximum() -> None:
    """A level departs when it passes 1.5 x the pre-window maximum and its floor, for two
    intervals; a single spike or a level under the floor does not."""
    before = [(T0 - 4, 2.0), (T0 - 2, 3.0), (T0, 2.5)]
    after = [
        (T0 + 2, 3.0),
        (T0 + 4, 5.0),
        (T0 + 6, 6.0),
        (T0 + 8, 2.0),
        (T0 + 10, 2.0),
        (T0 + 12, 2.0),
    ]
    found = departures.level_departure(before + after, T0, floor=0.5)
    assert found is not None
    assert (T0 + 4, 5.0, T0 + 6, 6.0, 3.0) == (
        found.first, found.first_value, found.worst, found.worst_value, found.baseline
    )  # fmt: skip
    assert T0 + 6 == found.recovered
    spike = [*before, (T0 + 2, 9.0), (T0 + 4, 2.0), (T0 + 6, 2.0)]
    assert departures.level_departure(spike, T0, floor=0.5) is None
    small = [(T0, 0.0), (T0 + 2, 0.2), (T0 + 4, 0.3)]
    assert departures.level_departure(small, T0, floor=0.5) is None


def test_quantiles_interpolate_like_prometheus() -> None:
    """The bucket quantile and the p99 edge match histogram_quantile's interpolation."""
    buckets = [(0.1, 50.0), (0.25, 90.0), (1.0, 99.0), (math.inf, 100.0)]
    assert 0.25 == pytest.approx(departures.quantile(0.9, buckets))
    assert 0.1 == pytest.approx(departures.quantile(0.5, buckets))
    assert 1.0 == departures.quantile(0.995, buckets)  # beyond the last finite edge
    assert 1.0 == departures.slow_edge(buckets)
    assert departures.quantile(0.5, []) is None


# --- times -------------------------------------------------------------------------------


def test_times_are_read_in_every_documented_form() -> None:
    """now, now-30m, epoch seconds and ISO 8601 (with or without an offset) are times."""
    assert T0 == times.parse_time("now", T0)
    assert T0 - 1800 == times.parse_time("now-30m", T0)
    assert T0 + 90 == times.parse_time("now+1m30s", T0)
    assert 1_777_896_000.5 == times.parse_time("1777896000.5")
    assert 1_777_896_000 == times.parse_time("2026-05-04T12:00:00Z")
    assert 1_777_896_000 == times.parse_time("2026-05-04T14:00:00+02:00")
    assert 1_777_896_000 == times.parse_time("2026-05-04T12:00:00")
    with pytest.raises(ValueError, match="accepted: now, now-30m"):
        times.parse_time("yesterday")
    with pytest.raises(ValueError, match="must be before"):
        times.parse_window("now", "now-1h", T0)
    assert "1 h 5 min" == times.duration_text(3900)


# --- logs --------------------------------------------------------------------------------


def _line(at: float, event: str, **fields: Any) -> str:
    stamp = f"{times.iso(int(at))[:-1]}.{int(at % 1 * 1e6):06d}Z"
    return json.dumps({"timestamp": stamp, "level": "info", "event": event, **fields})


def _access(at: float, cid: str, status: int, route: str = "/checkout", tenant: str = "a") -> str:
    return _line(at, "http.request", correlation_id=cid, route=route, tenant_id=tenant,
                 status=status, trace_id=cid * 2)  # fmt: skip


def test_logs_give_the_first_failed_requests_of_the_symptom_with_their_lines(
    tmp_path: Path,
) -> None:
    """The first failures of the hurt route and tenant come first, each with every line of
    its correlation id in time order; markers and flag changes become changes."""
    path = tmp_path / "shop.log"
    lines = [
        _line(T0 + 1, "deployment.marked", **{"service.name": "shop", "service.version": "2",
              "deployment.environment.name": "prod", "deployment.id": "shop-2-prod-1"}),
        _line(T0 + 2, "cart.loaded", correlation_id="c1"),
        _access(T0 + 3, "c0", 500, route="/other", tenant="b"),  # not the symptom's
        _access(T0 + 4, "c1", 500),
        _line(T0 + 2.5, "payment.debug", correlation_id="c1"),  # held debug line, written late
        _access(T0 + 5, "c2", 200),
        _access(T0 + 6, "c3", 503),
        "not json",
        _line(T0 + 7, "feature_flag.evaluation", **{"feature_flag.key": "new-checkout",
              "feature_flag.result.variant": "on", "feature_flag.previous_variant": "off"}),
        _line(T0 + 7.5, "feature_flag.evaluation", **{"feature_flag.key": "new-checkout",
              "feature_flag.result.variant": "on", "feature_flag.previous_variant": "off"}),
        _access(T0 + 50, "late", 500),  # after the window
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    found = logs.scan([str(path)], T0, T0 + 10, T0 - 60, hurt=[("/checkout", "a")], limit=2)
    assert ["c1", "c3"] == [r.correlation_id for r in found.requests]
    assert ["cart.loaded", "payment.debug", "http.request"] == [
        line["event"] for line in found.requests[0].lines
    ]
    assert (1, 3) == (found.unreadable, found.failed)
    assert [("marker", "shop 2 to prod"), ("flag", "new-checkout: off -> on")] == [
        (c.kind, c.what.removeprefix("deploy marker: ").removeprefix("flag "))
        for c in found.changes
    ]


def test_logs_from_a_stream_and_any_failure_when_no_symptom_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """'-' reads standard input; without a matching symptom the first failures are given."""
    stream = "\n".join([_access(T0 + 1, "x1", 500, tenant="z"), _access(T0 + 2, "x2", 502)])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stream))
    found = logs.scan(["-"], T0, T0 + 10, T0, hurt=[("/nowhere", "q")])
    assert ["x1", "x2"] == [r.correlation_id for r in found.requests]
    assert not any(r.in_symptom for r in found.requests)


def test_held_lines_are_bounded() -> None:
    """Lines held while waiting for a request's end are kept for the most recent correlation
    ids only, and at most PER_REQUEST per id."""
    source = logs._Source("s", T0, T0 + 100, T0, set(), 3)
    for k in range(logs.RECENT + 100):
        source.feed(_line(T0 + 1, "work", correlation_id=f"c{k}"))
    for _ in range(logs.PER_REQUEST + 20):
        source.feed(_line(T0 + 1, "work", correlation_id="busy"))
    assert logs.RECENT == len(source.held)
    assert logs.PER_REQUEST == len(source.held["busy"])


# --- flag changes from metrics --------------------------------------------------------------


def test_flag_variants_that_start_and_stop_are_changes() -> None:
    """A variant evaluated after a quiet baseline started; three quiet intervals: stopped."""
    window = Window(T0, T0 + 20, 10, 2)
    points = [(T0 - 8 + 2 * k, 0.0) for k in range(5)]
    points += [(T0 + 2, 0.0), (T0 + 4, 3.0), (T0 + 6, 4.0), (T0 + 8, 0.0), (T0 + 10, 0.0),
               (T0 + 12, 0.0)]  # fmt: skip
    found = changes._variant_changes("new-checkout", "on", points, window, "q")
    assert [("started", T0 + 2), ("stopped", T0 + 6)] == [(c.facts["change"], c.at) for c in found]


# --- drafts without incidents -----------------------------------------------------------------


def _empty(**overrides: Any) -> Timeline:
    values: dict[str, Any] = {
        "prometheus": "http://prometheus:9090", "service": "shop", "start": T0,
        "end": T0 + 3600, "baseline": 3600, "step": 60, "targets": [], "changes": [],
        "tiers": [], "symptoms": [], "saturation": [], "exemplars": [], "exemplar_query": "",
        "budgets": [], "logs": None, "notes": [],
    }  # fmt: skip
    values.update(overrides)
    return Timeline(**values)


def test_a_quiet_window_drafts_nothing_invented() -> None:
    """Without any departure the draft says so and leaves the rest to the team."""
    draft = postmortem.draft(_empty())
    assert "No route or tenant left its pre-window band" in draft
    assert postmortem.TODO in draft
    assert "no page-severity SLOBurn alert fired" in draft
    assert "No route or tenant left its pre-window band" in render.terminal(_empty())


def test_an_unpaged_symptom_proposes_an_objective() -> None:
    """A symptom no SLO tier paged on gets an action item: an objective on its route."""
    found = departures.Departure(T0 + 120, 0.5, T0 + 180, 0.9, 0.0, None, 30, 60, 2)
    labels = {"http_route": "/pay", "tenant_id": "acme"}
    symptom = Movement(
        "request errors", "http_server_request_duration_seconds", labels, "errors", found, "q"
    )
    draft = postmortem.draft(_empty(symptoms=[symptom]))
    assert "Cover /pay with an objective that pages." in draft
    assert "slo.HttpAvailability(routes=('/pay',))" in draft
    assert "not back within band by" in draft


def test_the_cli_says_why_it_cannot_answer(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable Prometheus, a bad time or a bad URL: exit 2 with the reason."""
    assert 2 == main(
        ["incident", "timeline", "--prometheus", "http://127.0.0.1:9", "--from", "now-1h"]
    )
    assert "Connection refused" in capsys.readouterr().err
    assert 2 == main(["incident", "timeline", "--prometheus", "http://x", "--from", "soon"])
    assert "not a time: 'soon'" in capsys.readouterr().err
    assert 2 == main(["incident", "postmortem", "--prometheus", "prom:9090", "--from", "now-1h"])
    assert "--prometheus must be an http:// or https:// URL" in capsys.readouterr().err


# --- every query the timeline asks is valid PromQL; the package stays beside the service -----


class _Recorder:
    """Stands in for the Prometheus client: records each expression, answers nothing."""

    def __init__(self) -> None:
        self.expressions: list[str] = []
        self.calls = 0

    def query(self, expr: str, at: float) -> list[Any]:
        self.expressions.append(expr)
        return []

    def range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        self.expressions.append(expr)
        return []

    def exemplars(self, expr: str, start: float, end: float) -> list[Any]:
        self.expressions.append(expr)
        return []

    def alerting_rules(self) -> list[dict[str, Any]]:
        query = (
            '(\n  slo:sli_error:ratio_rate1h{slo="x"} / 0.01 > 14.4\nand\n'
            '  slo:sli_error:ratio_rate5m{slo="x"} / 0.01 > 14.4\n)\n'
        )
        labels = {"slo": "x", "severity": "page", "long_window": "1h", "short_window": "5m"}
        return [{"name": "SLOBurn", "query": query, "labels": labels, "duration": 120}]


def test_every_timeline_query_is_valid_promql(tmp_path: Path) -> None:
    """The queries behind every section (changes, flags, tiers, symptoms, saturation, budgets,
    exemplars) parse in promtool."""
    recorder: Any = _Recorder()
    window = Window(T0, T0 + 600, 600, 15, (Matcher("job", "=", "shop"),))
    changes.service_targets(recorder, "shop", window)
    changes.build_changes(recorder, "shop", window)
    changes.flag_changes(recorder, window)
    detection.tiers(recorder, window)
    detection.budget_spent(recorder, window, ["x"])
    found, edges = signals.symptoms(recorder, window)
    signals.saturation(recorder, window)
    exemplars.find(recorder, window, found, edges, 10)
    assert len(recorder.expressions) >= 18
    check_promql(recorder.expressions, tmp_path)


def test_the_package_imports_nothing_of_the_request_path() -> None:
    """obskit.incident runs beside the service: no import from web/ or the tail sampler."""
    root = Path(__file__).resolve().parents[1] / "src" / "obskit" / "incident"
    text = "\n".join(path.read_text() for path in root.glob("*.py"))
    assert "obskit.web" not in text
    assert "obskit.tracing.tail" not in text
    probe = "import obskit, sys; print(any(m.startswith('obskit.incident') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "False" == out.stdout.strip()
