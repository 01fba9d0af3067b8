"""Where the arms' counts come from: a Prometheus (range queries) or the arms' own /metrics.

Both sources hand the judge the same thing: per interval and per arm, each quantity's counter
*increase* summed per grouping (see :data:`obskit.canary.judge.Interval`). Increases are taken
per series of one scrape target — a value lower than the previous one is a counter reset (a
restarted process), whose increase is the new value — and only then summed over targets, so a
restart in one instance neither loses nor invents events. A series that appears after the first
look counts its whole value (it was created since: prometheus-client creates a series at its
first event). Gauges are summed as they are.

:class:`PrometheusSource` asks one range query per arm, quantity and grouping — the grouping is
a ``by (...)`` clause, so the number of queries does not depend on how many tenants or routes
there are. :class:`ScrapeSource` fetches each ``/metrics`` URL of each arm itself.

Every HTTP call is obskit's own (:mod:`obskit._selfhttp`: bounded as a whole, capped in size,
never instrumented); Prometheus is asked through :mod:`obskit._prometheus`, which checks each
answer's shape. A value Prometheus or an exposition writes as NaN or ±Inf is no sample.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

from obskit._prometheus import MAX_POINTS, Prometheus, PrometheusError, Series
from obskit._selfhttp import HttpError, detail, get
from obskit.canary.checks import Quantity
from obskit.canary.judge import Grouping, Interval
from obskit.metrics import catalogue, promql
from obskit.metrics.promql import Matcher, Selector

__all__ = [
    "PrometheusSource",
    "ScrapeSource",
    "SourceError",
    "fetch",
    "increases",
    "split_arm",
]

TARGET = ("job", "instance")
INFO_LABELS = frozenset(catalogue.BUILD_INFO.labels)


class SourceError(Exception):
    """A source cannot be read (unreachable, an error answer, an unparsable body)."""


def fetch(url: str, timeout: float, accept: str = "") -> bytes:
    """GET ``url`` as obskit's own work (see :mod:`obskit._selfhttp`); SourceError if it fails."""
    try:
        return get(url, timeout=timeout, accept=accept or "*/*").body
    except HttpError as exc:
        raise SourceError(str(exc)) from None


def increases(values: Sequence[float | None], gauge: bool = False) -> list[float]:
    """Per-step increases of one counter series (``None``: no sample at that step).

    The first step is the starting point; a drop is a reset; a series absent at the first step
    counts its first value whole. For a gauge: the values themselves (missing = 0), first
    step excluded.
    """
    out = [0.0] * max(0, len(values) - 1)
    if gauge:
        for index in range(1, len(values)):
            value = values[index]
            out[index - 1] = value if value is not None else 0.0
        return out
    previous = values[0] if values else None
    for index in range(1, len(values)):
        value = values[index]
        if value is None:
            continue  # a gap: the next sample's increase covers it
        if previous is None or value < previous:
            out[index - 1] = value
        else:
            out[index - 1] = value - previous
        previous = value
    return out


def split_arm(matchers: Iterable[Matcher]) -> tuple[tuple[Matcher, ...], tuple[Matcher, ...]]:
    """An arm's matchers: those on the series themselves, and those on ``obskit_build_info``
    (``service_version``, ``service_name``, ...), which select targets through a join."""
    direct: list[Matcher] = []
    info: list[Matcher] = []
    for matcher in matchers:
        (info if matcher.label in INFO_LABELS else direct).append(matcher)
    return tuple(direct), tuple(info)


class PrometheusSource:
    """Per-interval increases of both arms over ``[end - since, end]``, from range queries."""

    def __init__(
        self,
        url: str,
        baseline: Sequence[Matcher],
        canary: Sequence[Matcher],
        *,
        since: float,
        step: float,
        end: float | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not (0 < step <= since and math.isfinite(since)):
            raise ValueError("since and step must be positive, step at most since")
        intervals = math.floor(since / step + 1e-9)
        if intervals >= MAX_POINTS:
            raise ValueError(
                f"a window of {since:g} s in steps of {step:g} s is {intervals} intervals; "
                f"at most {MAX_POINTS - 1} (a longer step)"
            )
        try:
            self.client = Prometheus(url, timeout)
        except PrometheusError as exc:
            raise ValueError(str(exc)) from None
        self.url = self.client.url
        self.arms = (tuple(canary), tuple(baseline))
        self.since, self.step, self.end = since, step, end
        self.timeout = timeout

    @property
    def queries(self) -> int:
        """How many range queries were asked."""
        return self.client.calls

    def expression(self, arm: Sequence[Matcher], quantity: Quantity, grouping: Grouping) -> str:
        """The PromQL of one arm's quantity, summed by target and ``grouping``."""
        direct, info = split_arm(arm)
        series = Selector(quantity.sample, (*direct, *quantity.matchers))
        expr = str(series)
        if info:
            expr = promql.group_left(expr, Selector(catalogue.BUILD_INFO.sample, info), TARGET)
        return promql.sum_by(expr, [*TARGET, *grouping, *quantity.labels])

    def intervals(
        self, needed: Sequence[tuple[Quantity, Grouping]]
    ) -> list[tuple[Interval, Interval]]:
        """(canary, baseline) increases for every step of the window after the first."""
        end = self.end if self.end is not None else time.time()
        start = end - self.since
        steps = math.floor((end - start) / self.step + 1e-9) + 1
        times = [start + i * self.step for i in range(steps)]
        arms: list[list[dict[tuple[Quantity, Grouping], dict[tuple[str, ...], float]]]] = []
        for matchers in self.arms:
            per_step: list[dict[tuple[Quantity, Grouping], dict[tuple[str, ...], float]]] = [
                {} for _ in range(steps - 1)
            ]
            for quantity, grouping in needed:
                expr = self.expression(matchers, quantity, grouping)
                result = self._query_range(expr, start, times[-1])
                self._add(per_step, result, quantity, grouping, times)
            arms.append(per_step)
        return list(zip(arms[0], arms[1], strict=True))

    def _add(
        self,
        per_step: list[dict[tuple[Quantity, Grouping], dict[tuple[str, ...], float]]],
        result: Sequence[Series],
        quantity: Quantity,
        grouping: Grouping,
        times: Sequence[float],
    ) -> None:
        start, count = times[0], len(times)
        names = (*grouping, *quantity.labels)
        targets = [interval.setdefault((quantity, grouping), {}) for interval in per_step]
        keep_zero = bool(quantity.labels)  # every bucket: the layout is compared
        for series in result:
            key = tuple(str(series.labels.get(name, "")) for name in names)
            values: list[float | None] = [None] * count
            for stamp, value in series.points:
                index = int((stamp - start) / self.step + 0.5)
                if 0 <= index < count and not math.isnan(value):
                    values[index] = value
            for step, increase in enumerate(increases(values, quantity.gauge)):
                if increase or keep_zero:
                    target = targets[step]
                    target[key] = target.get(key, 0.0) + increase

    def _query_range(self, expr: str, start: float, end: float) -> list[Series]:
        try:
            return self.client.range(expr, start, end, self.step)
        except PrometheusError as exc:
            raise SourceError(str(exc)) from None


class ScrapeSource:
    """Each arm is a set of ``/metrics`` URLs, scraped by :meth:`scrape`.

    ``reader`` reads one URL's exposition (default: GET it); a recorded run passes one that
    returns what was scraped then, so the judge can be replayed from its artifacts.
    """

    def __init__(
        self,
        baseline: Sequence[str],
        canary: Sequence[str],
        needed: Sequence[tuple[Quantity, Grouping]],
        *,
        baseline_matchers: Sequence[Matcher] = (),
        canary_matchers: Sequence[Matcher] = (),
        timeout: float = 10.0,
        reader: Callable[[str], bytes] | None = None,
    ) -> None:
        if not baseline or not canary:
            raise ValueError("each arm needs at least one /metrics URL")
        self.arms = (
            (tuple(canary), tuple(canary_matchers)),
            (tuple(baseline), tuple(baseline_matchers)),
        )
        self.needed = list(needed)
        self.samples = {q.sample for q, _ in self.needed}
        self.timeout = timeout
        self.reader = reader
        self._last: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        self.scrapes = 0

    def scrape(self) -> tuple[Interval, Interval] | None:
        """Increases since the previous scrape (None on the first: it only sets the start)."""
        first = not self._last
        out = [self._arm(index, urls, matchers) for index, (urls, matchers) in enumerate(self.arms)]
        self.scrapes += 1
        return None if first else (out[0], out[1])

    def _arm(self, index: int, urls: Sequence[str], arm: Sequence[Matcher]) -> Interval:
        interval: dict[tuple[Quantity, Grouping], dict[tuple[str, ...], float]] = {}
        for url in urls:
            current = self._read(url)
            # Per arm: two arms may read one URL (flag variants of one service).
            previous = self._last.get(f"{index} {url}")
            self._last[f"{index} {url}"] = current
            if previous is None:
                continue
            for (name, items), value in current.items():
                before = previous.get((name, items))
                labels = dict(items)
                if not all(m.matches(labels.get(m.label, "")) for m in arm):
                    continue
                for quantity, grouping in self.needed:
                    if quantity.sample != name:
                        continue
                    if not all(m.matches(labels.get(m.label, "")) for m in quantity.matchers):
                        continue
                    if quantity.gauge or before is None or value < before:
                        amount = value
                    else:
                        amount = value - before
                    if not amount and not quantity.labels:
                        continue
                    key = tuple(labels.get(n, "") for n in (*grouping, *quantity.labels))
                    bucket = interval.setdefault((quantity, grouping), {})
                    bucket[key] = bucket.get(key, 0.0) + amount
        return interval

    def _read(self, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        from prometheus_client.parser import text_string_to_metric_families

        if self.reader is not None:
            body = self.reader(url)
        else:
            try:
                body = fetch(url, self.timeout, accept="text/plain; version=0.0.4")
            except SourceError as exc:
                raise SourceError(f"cannot scrape an arm's /metrics: {exc}") from None
        values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        try:
            for family in text_string_to_metric_families(body.decode("utf-8")):
                for sample in family.samples:
                    if sample.name in self.samples and math.isfinite(sample.value):
                        values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
            reason = detail(str(exc), 200)
            raise SourceError(f"{url}: not a Prometheus text exposition: {reason}") from None
        return values
