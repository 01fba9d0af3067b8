"""The Python API: :func:`judge` (one look through Prometheus) and :func:`watch` (scrape loop).

Both return the same :class:`~obskit.canary.report.Report` the command line prints::

    from obskit.canary import judge
    report = judge("http://prometheus:9090", baseline='{service_version="1.4.2"}',
                   canary='{service_version="1.5.0"}', since="30m", by=["tenant_id"])
    if report.verdict == "FAIL": ...
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from obskit._times import parse_seconds as parse_duration
from obskit.canary import checks as checks_module
from obskit.canary.checks import CheckSpec, Tolerances
from obskit.canary.judge import Judge, JudgeOptions
from obskit.canary.report import Report
from obskit.canary.sources import PrometheusSource, ScrapeSource
from obskit.metrics import catalogue, promql
from obskit.metrics.promql import Matcher, parse_matchers

__all__ = ["FLAG_LABELS", "judge", "parse_duration", "plan", "watch"]

# An arm selected by these labels is a flag variant: both arms live in the same processes.
FLAG_LABELS = frozenset(("feature_flag_key", "feature_flag_variant"))

Arm = str | Sequence[Matcher]


def _matchers(arm: Arm, name: str, *, required: bool = True) -> tuple[Matcher, ...]:
    matchers = parse_matchers(arm) if isinstance(arm, str) else tuple(arm)
    if required and not matchers:
        raise ValueError(f"the {name} selector selects nothing: give at least one matcher")
    return matchers


def _timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"a timeout is a positive number of seconds, not {timeout!r}")
    return float(timeout)


def _engine(
    baseline: Sequence[Matcher],
    canary: Sequence[Matcher],
    *,
    by: Sequence[str],
    alpha: float,
    min_requests: int,
    tolerances: Tolerances | None,
    quantiles: Sequence[float],
    saturation_gates: bool,
) -> tuple[list[CheckSpec], Judge]:
    """The checks for two arms and a judge of them (what :func:`judge` and :func:`watch` share)."""
    if isinstance(by, str):
        raise ValueError(f"by is a sequence of label names, not the string {by!r}")
    promql.by_clause(by)  # a label name that is not one fails here, before any query
    specs = plan(
        baseline,
        canary,
        by=by,
        quantiles=quantiles,
        tolerances=tolerances,
        saturation_gates=saturation_gates,
    )
    options = JudgeOptions(alpha=alpha, min_requests=min_requests, by=tuple(by))
    return specs, Judge(specs, options)


def plan(
    baseline: Sequence[Matcher] = (),
    canary: Sequence[Matcher] = (),
    *,
    by: Sequence[str] = (),
    quantiles: Sequence[float] = (0.95, 0.99),
    tolerances: Tolerances | None = None,
    saturation_gates: bool = False,
) -> list[CheckSpec]:
    """The checks for two arms: flag variants compare requests only (one process, one USE)."""
    flags = any(m.label in FLAG_LABELS for m in (*baseline, *canary))
    requests = catalogue.FEATURE_FLAG_REQUEST_DURATION if flags else catalogue.HTTP_SERVER_DURATION
    return checks_module.standard_checks(
        by=by,
        requests=requests,
        quantiles=quantiles,
        tolerances=tolerances,
        resources=not flags,
        saturation_gates=saturation_gates,
    )


def judge(
    prometheus: str,
    baseline: Arm,
    canary: Arm,
    since: str | float,
    *,
    step: str | float | None = None,
    by: Sequence[str] = (),
    alpha: float = 0.05,
    min_requests: int = 200,
    tolerances: Tolerances | None = None,
    quantiles: Sequence[float] = (0.95, 0.99),
    saturation_gates: bool = False,
    end: float | None = None,
    timeout: float = 10.0,
) -> Report:
    """One look over the last ``since``: per-interval counts from range queries, judged.

    Stateless: ask again at any time (every interval of a rollout) — the tests are
    anytime-valid, so repeated looks do not raise the chance of failing a good canary.
    Raises :class:`~obskit.canary.sources.SourceError` when Prometheus cannot be read and
    ``ValueError`` for a bad argument. ``step`` (default: a thirtieth of the window, at least
    1 s) is the interval of the range queries.
    """
    window = parse_duration(since)
    # 30 intervals a window: the e-processes gain little from finer ones, the reads cost more.
    interval = parse_duration(step) if step is not None else max(1.0, round(window / 30))
    base, can = _matchers(baseline, "baseline"), _matchers(canary, "canary")
    specs, engine = _engine(
        base,
        can,
        by=by,
        alpha=alpha,
        min_requests=min_requests,
        tolerances=tolerances,
        quantiles=quantiles,
        saturation_gates=saturation_gates,
    )
    source = PrometheusSource(
        prometheus, base, can, since=window, step=interval, end=end, timeout=_timeout(timeout)
    )
    for canary_counts, baseline_counts in source.intervals(checks_module.needed(specs)):
        engine.observe(canary_counts, baseline_counts)
    return engine.report(
        {
            "source": "prometheus",
            "window_seconds": window,
            "step_seconds": interval,
            "queries": source.queries,
            "baseline": " ".join(map(str, base)),
            "canary": " ".join(map(str, can)),
        }
    )


def watch(
    baseline_metrics: Sequence[str],
    canary_metrics: Sequence[str],
    *,
    interval: float = 10.0,
    max_duration: float = 600.0,
    by: Sequence[str] = (),
    baseline_selector: Arm = (),
    canary_selector: Arm = (),
    alpha: float = 0.05,
    min_requests: int = 200,
    tolerances: Tolerances | None = None,
    quantiles: Sequence[float] = (0.95, 0.99),
    saturation_gates: bool = False,
    on_look: Callable[[Report], Any] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    timeout: float = 10.0,
) -> Report:
    """Scrape both arms every ``interval`` s; stop at the first FAIL or after ``max_duration``.

    ``baseline_selector``/``canary_selector`` keep only matching series of the scraped URLs
    (flag variants of one service: the same URL for both arms, a variant label each).
    """
    if not (
        math.isfinite(interval) and math.isfinite(max_duration) and 0 < interval <= max_duration
    ):
        raise ValueError("interval must be positive and max_duration at least one interval")
    base = _matchers(baseline_selector, "baseline", required=False)
    can = _matchers(canary_selector, "canary", required=False)
    specs, engine = _engine(
        base,
        can,
        by=by,
        alpha=alpha,
        min_requests=min_requests,
        tolerances=tolerances,
        quantiles=quantiles,
        saturation_gates=saturation_gates,
    )
    source = ScrapeSource(
        baseline_metrics,
        canary_metrics,
        checks_module.needed(specs),
        baseline_matchers=base,
        canary_matchers=can,
        timeout=_timeout(timeout),
    )
    meta: dict[str, Any] = {
        "source": "scrape",
        "interval_seconds": interval,
        "baseline": list(baseline_metrics),
        "canary": list(canary_metrics),
    }
    started = time.monotonic()
    source.scrape()
    report = engine.report(meta)
    while True:
        next_look = started + interval * (engine.looks + 1)
        # Slow scrapes must not stretch the watch past its limit either.
        if max(next_look, time.monotonic()) - started > max_duration + 1e-9:
            break
        sleep(max(0.0, next_look - time.monotonic()))
        counts = source.scrape()
        if counts is None:
            continue
        engine.observe(*counts)
        report = engine.report({**meta, "elapsed_seconds": round(time.monotonic() - started, 1)})
        if on_look is not None:
            on_look(report)
        if report.verdict == "FAIL":
            break
    return report
