"""The judge: per-interval counts of both arms in, a :class:`~obskit.canary.report.Report` out.

:meth:`Judge.observe` takes one interval's increments of each arm (what a source read: the
sum, per grouping, of each quantity's counter increases) and updates every check's e-process;
:meth:`Judge.report` applies the minimum samples, Holm's correction and the verdict rules at any
moment. The same object serves one stateless look over a window (``obskit canary judge`` feeds
it every interval of a range query) and a watch loop (fed as scrapes arrive).

Latency and other tail checks take their bucket boundaries from the baseline of their segment:
the intervals until the baseline reached a quarter of the minimum sample (at least 25
observations) are the warm-up, whose counts
choose the two boundaries around the quantile (see :func:`~obskit.canary.stats.bracket`); the
tests run on the intervals after it, so the boundaries are fixed before the data they test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obskit.canary import stats
from obskit.canary.checks import CheckSpec, Quantity
from obskit.canary.report import Arm, Check, Decision, Report

__all__ = ["Interval", "Judge", "JudgeOptions"]

Grouping = tuple[str, ...]
Segment = tuple[str, ...]
# One arm's increments in one interval: (quantity, grouping) -> key -> value; a key is the
# grouping's label values followed by the quantity's own labels (``le`` for bucket counts).
Interval = Mapping[tuple[Quantity, Grouping], Mapping[tuple[str, ...], float]]

CANARY, BASELINE = 0, 1


@dataclass(frozen=True)
class JudgeOptions:
    """How strict the judge is."""

    alpha: float = 0.05
    min_requests: int = 200
    by: tuple[str, ...] = ()

    @property
    def warm_up(self) -> int:
        """Baseline observations that choose a tail check's boundaries before it tests."""
        return max(25, self.min_requests // 4)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, not {self.alpha}")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be >= 1, not {self.min_requests}")


_LE_CACHE: dict[str, float] = {}


def _le(text: str) -> float:
    value = _LE_CACHE.get(text)
    if value is None:
        value = math.inf if text == "+Inf" else float(text)
        if len(_LE_CACHE) < 4096:
            _LE_CACHE[text] = value
    return value


class _State:
    """One check in one segment: its e-process(es) and the totals the report shows."""

    def __init__(self, spec: CheckSpec, grouping: Grouping, segment: Segment) -> None:
        self.spec = spec
        self.grouping = grouping
        self.segment = segment
        r0 = 1.0 + spec.tolerance
        self.ratio = stats.RatioTest(r0) if spec.kind == "ratio" else None
        self.exposure = [0.0, 0.0]
        self.events = [0.0, 0.0]
        self.intervals = 0
        # tail checks
        self.r0 = r0
        self.buckets: list[dict[str, float]] = [{}, {}]  # cumulative totals per le, per arm
        self.warm: dict[str, float] = {}
        self.warm_n = 0.0
        self.edges: list[tuple[float, str]] | None = None
        self.tail_tests: list[stats.RatioTest] = []
        self.max_log_e = 0.0

    # --- feeding -------------------------------------------------------------------------------

    def add_ratio(self, x_c: float, n_c: float, x_b: float, n_b: float) -> None:
        assert self.ratio is not None
        if self.spec.events_in_exposure:
            n_c, n_b = n_c + x_c, n_b + x_b
        self.exposure[CANARY] += n_c
        self.exposure[BASELINE] += n_b
        self.events[CANARY] += x_c
        self.events[BASELINE] += x_b
        self.ratio.update(x_c, n_c, x_b, n_b)

    def add_tail(
        self, n_c: float, n_b: float, b_c: Mapping[str, float], b_b: Mapping[str, float]
    ) -> None:
        self.exposure[CANARY] += n_c
        self.exposure[BASELINE] += n_b
        for arm, counts in ((CANARY, b_c), (BASELINE, b_b)):
            totals = self.buckets[arm]
            get = totals.get
            for le, value in counts.items():
                totals[le] = get(le, 0.0) + value
        if self.edges is None:
            warm = self.warm
            for le, value in b_b.items():
                warm[le] = warm.get(le, 0.0) + value
            self.warm_n += n_b
            return
        if not self.tail_tests:
            return
        for (_, le), test in zip(self.edges, self.tail_tests, strict=True):
            x_c = n_c - b_c.get(le, n_c)
            x_b = n_b - b_b.get(le, n_b)
            test.update(max(0.0, x_c), n_c, max(0.0, x_b), n_b)
        self.events[CANARY] = sum(t.events[0] for t in self.tail_tests)
        self.events[BASELINE] = sum(t.events[1] for t in self.tail_tests)
        self.max_log_e = max(self.max_log_e, stats.average_log_e(self.tail_tests))

    def freeze(self, min_requests: int) -> None:
        """After the warm-up: the boundaries around the quantile, from the baseline's counts."""
        if self.edges is not None or self.warm_n < min_requests:
            return
        ordered = sorted(self.warm.items(), key=lambda item: _le(item[0]))
        chosen = stats.bracket(
            [_le(le) for le, _ in ordered], [v for _, v in ordered], self.spec.quantile
        )
        names = {_le(le): le for le, _ in ordered}
        self.edges = [(edge, names[edge]) for edge in chosen]
        self.tail_tests = [stats.RatioTest(self.r0) for _ in self.edges]

    # --- reading -------------------------------------------------------------------------------

    def layouts_differ(self) -> bool:
        canary, baseline = self.buckets
        return bool(canary) and bool(baseline) and set(canary) != set(baseline)

    def e_value(self) -> float | None:
        if self.ratio is not None:
            return self.ratio.e_value
        if self.tail_tests:
            return math.exp(stats.average_log_e(self.tail_tests))
        return None

    def p_value(self) -> float:
        if self.ratio is not None:
            return self.ratio.p_value
        return min(1.0, math.exp(-self.max_log_e))

    def testable(self) -> bool:
        if self.spec.kind == "gauge":
            return False
        if self.spec.kind == "tail" and (not self.tail_tests or self.layouts_differ()):
            return False
        return self.exposure[CANARY] > 0 and self.exposure[BASELINE] > 0

    def arm(self, index: int) -> Arm:
        count = self.exposure[index]
        if self.spec.kind == "gauge":
            value = count / self.intervals if self.intervals else None
            return Arm(self.intervals, None, value)
        if self.spec.kind == "tail":
            return Arm(
                count, self.events[index], _quantile(self.buckets[index], self.spec.quantile)
            )
        events = self.events[index]
        return Arm(count, events, events / count if count > 0 else None)

    def effect(self) -> float | None:
        if self.ratio is not None:
            return self.ratio.ratio()
        if not self.tail_tests:
            return None
        (x_c, x_b) = (self.events[CANARY], self.events[BASELINE])
        n_c = sum(t.exposure[0] for t in self.tail_tests)
        n_b = sum(t.exposure[1] for t in self.tail_tests)
        if n_c <= 0 or n_b <= 0:
            return None
        if x_b <= 0:
            return None if x_c <= 0 else math.inf
        return (x_c / n_c) / (x_b / n_b)


def _quantile(cumulative: Mapping[str, float], q: float) -> float | None:
    """``histogram_quantile`` on cumulative bucket totals (linear within the bucket)."""
    ordered = sorted(((_le(le), v) for le, v in cumulative.items()), key=lambda item: item[0])
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_edge, lower_count = 0.0, 0.0
    for edge, count in ordered:
        if count >= rank:
            if math.isinf(edge):
                return lower_edge  # beyond the last finite boundary: its value, as Prometheus
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return ordered[-1][0]


def _by_segment(data: Mapping[tuple[str, ...], float], width: int) -> dict[Segment, float]:
    if not data:
        return {}
    if width == 0:
        return {(): sum(data.values())}
    out: dict[Segment, float] = {}
    for key, value in data.items():
        segment = key[:width]
        out[segment] = out.get(segment, 0.0) + value
    return out


def _buckets_by_segment(
    data: Mapping[tuple[str, ...], float], width: int
) -> dict[Segment, dict[str, float]]:
    out: dict[Segment, dict[str, float]] = {}
    for key, value in data.items():
        per_le = out.setdefault(key[:width], {})
        le = key[width]
        per_le[le] = per_le.get(le, 0.0) + value
    return out


_EMPTY: Mapping[tuple[str, ...], float] = {}


class Judge:
    """Anytime-valid comparison of a canary with its baseline, over any number of looks."""

    def __init__(self, checks: Sequence[CheckSpec], options: JudgeOptions | None = None) -> None:
        self.checks = list(checks)
        self.options = options or JudgeOptions()
        self._states: dict[tuple[int, Grouping, Segment], _State] = {}
        self._sums: dict[tuple[int, int, bool], Any] = {}
        self.looks = 0

    def observe(self, canary: Interval, baseline: Interval) -> None:
        """Add one interval of both arms (increments since the previous interval)."""
        self.looks += 1
        self._sums = {}  # per interval: the segment sums the checks share
        for index, spec in enumerate(self.checks):
            for grouping in spec.groupings:
                self._observe(index, spec, grouping, canary, baseline)
        self._sums = {}

    def _segments(self, data: Mapping[tuple[str, ...], float], width: int, buckets: bool) -> Any:
        """``data`` summed per segment (memoised for the interval: p95 and p99 read the same)."""
        key = (id(data), width, buckets)
        found = self._sums.get(key)
        if found is None:
            found = _buckets_by_segment(data, width) if buckets else _by_segment(data, width)
            self._sums[key] = found
        return found

    def _observe(
        self, index: int, spec: CheckSpec, grouping: Grouping, canary: Interval, baseline: Interval
    ) -> None:
        width = len(grouping)
        key = (spec.exposure, grouping)
        exp_c = self._segments(canary.get(key, _EMPTY), width, False)
        exp_b = self._segments(baseline.get(key, _EMPTY), width, False)
        if spec.kind == "gauge":
            for segment in set(exp_c) | set(exp_b):
                state = self._state(index, spec, grouping, segment)
                state.intervals += 1
                state.exposure[CANARY] += exp_c.get(segment, 0.0)
                state.exposure[BASELINE] += exp_b.get(segment, 0.0)
            return
        if spec.kind == "ratio":
            assert spec.events is not None
            ev_key = (spec.events, grouping)
            ev_c = self._segments(canary.get(ev_key, _EMPTY), width, False)
            ev_b = self._segments(baseline.get(ev_key, _EMPTY), width, False)
            for segment in set(exp_c) | set(exp_b) | set(ev_c) | set(ev_b):
                state = self._state(index, spec, grouping, segment)
                state.intervals += 1
                state.add_ratio(
                    ev_c.get(segment, 0.0),
                    exp_c.get(segment, 0.0),
                    ev_b.get(segment, 0.0),
                    exp_b.get(segment, 0.0),
                )
            return
        assert spec.buckets is not None
        bk_key = (spec.buckets, grouping)
        bk_c = self._segments(canary.get(bk_key, _EMPTY), width, True)
        bk_b = self._segments(baseline.get(bk_key, _EMPTY), width, True)
        for segment in set(exp_c) | set(exp_b):
            state = self._state(index, spec, grouping, segment)
            state.intervals += 1
            state.add_tail(
                exp_c.get(segment, 0.0),
                exp_b.get(segment, 0.0),
                bk_c.get(segment, {}),
                bk_b.get(segment, {}),
            )
            state.freeze(self.options.warm_up)

    def _state(self, index: int, spec: CheckSpec, grouping: Grouping, segment: Segment) -> _State:
        key = (index, grouping, segment)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(spec, grouping, segment)
        return state

    # --- the report ----------------------------------------------------------------------------

    def report(self, meta: Mapping[str, Any] | None = None) -> Report:
        """The verdict now, with every check."""
        states = list(self._states.values())
        families: dict[str, list[_State]] = {}
        for state in states:
            if state.testable():
                families.setdefault(self._family(state), []).append(state)
        alpha_of = self._alphas(families)
        failed: set[int] = set()
        thresholds: dict[int, float] = {}
        for name, members in families.items():
            p_values = [s.p_value() for s in members]
            rejected = stats.holm(p_values, alpha_of[name])
            order = sorted(range(len(members)), key=p_values.__getitem__)
            for rank, position in enumerate(order):
                state = members[position]
                thresholds[id(state)] = stats.holm_threshold(rank, len(members), alpha_of[name])
                if rejected[position]:
                    failed.add(id(state))
        checks = [self._check(s, id(s) in failed, thresholds.get(id(s))) for s in states]
        checks.sort(
            key=lambda c: (c.role != "gate", self._order(c.metric), len(c.segment), c.segment_text)
        )
        verdict, reasons = self._verdict(checks)
        return Report(verdict, reasons, checks, self.looks, dict(meta or {}))

    def _order(self, metric: str) -> int:
        for index, spec in enumerate(self.checks):
            if spec.metric == metric:
                return index
        return len(self.checks)

    def _family(self, state: _State) -> str:
        if state.spec.role != "gate":
            return "causes"
        segmented = any(label in self.options.by for label in state.grouping)
        return "segments" if segmented else "aggregate"

    def _alphas(self, families: Mapping[str, list[_State]]) -> dict[str, float]:
        # Gates share alpha: half to the aggregate/per-route checks, half to the per-segment
        # ones, so fifty tenants do not dilute the aggregate's power. Causes never decide the
        # verdict alone; their own family at alpha keeps their "moved" honest.
        alpha = self.options.alpha
        split = "segments" in families and "aggregate" in families
        return {
            name: alpha / 2 if split and name in ("segments", "aggregate") else alpha
            for name in families
        }

    def _check(self, state: _State, failed: bool, threshold: float | None) -> Check:
        spec = state.spec
        segment = dict(zip(state.grouping, state.segment, strict=True))
        baseline, canary = state.arm(BASELINE), state.arm(CANARY)
        effect = state.effect()
        e_value = state.e_value()
        decision, reason = self._decide(state, failed, baseline, canary, effect, e_value, threshold)
        return Check(
            spec.metric,
            segment,
            spec.role,
            baseline,
            canary,
            effect,
            e_value,
            threshold,
            decision,
            reason,
            spec.tolerance,
            tuple(edge for edge, _ in state.edges or ()),
        )

    def _decide(
        self,
        state: _State,
        failed: bool,
        baseline: Arm,
        canary: Arm,
        effect: float | None,
        e_value: float | None,
        threshold: float | None,
    ) -> tuple[Decision, str]:
        spec, minimum = state.spec, self.options.min_requests
        allowed = f"allowed +{spec.tolerance:.0%}"
        if spec.kind == "gauge":
            return "INFO", "a gauge: shown for context, not tested"
        if state.exposure[CANARY] <= 0:
            return "INCONCLUSIVE", "no traffic"
        if state.exposure[BASELINE] <= 0:
            return "INCONCLUSIVE", "no baseline traffic to compare with"
        if spec.kind == "tail" and state.layouts_differ():
            return "INCONCLUSIVE", "bucket layouts differ between the arms"
        if failed:
            return "FAIL", self._failure(
                spec, baseline, canary, effect, e_value, threshold, allowed
            )
        if min(state.exposure) < minimum:
            low = min(state.exposure)
            return "INCONCLUSIVE", f"too few to judge: {low:g} < {minimum} in one arm"
        if spec.kind == "tail" and not state.tail_tests:
            return "INCONCLUSIVE", "baseline warm-up not finished: no boundary chosen yet"
        shown = _effect_words(effect)
        return "PASS", f"no evidence of more than {allowed}; {shown}"

    def _failure(
        self,
        spec: CheckSpec,
        baseline: Arm,
        canary: Arm,
        effect: float | None,
        e_value: float | None,
        threshold: float | None,
        allowed: str,
    ) -> str:
        evidence = f"e={e_value:.3g} >= {threshold:.3g}" if e_value and threshold else ""
        if spec.kind == "tail":
            b = f"{baseline.value * 1000:.0f} ms" if baseline.value is not None else "?"
            c = f"{canary.value * 1000:.0f} ms" if canary.value is not None else "?"
            return (
                f"{spec.metric.split()[-1]} {b} -> {c}: {_effect_words(effect)} above the chosen "
                f"boundaries ({allowed}; {evidence})"
            )
        b = f"{baseline.value:.2%}" if baseline.value is not None else "?"
        c = f"{canary.value:.2%}" if canary.value is not None else "?"
        return f"{b} -> {c}: {_effect_words(effect)} ({allowed}; {evidence})"

    def _verdict(self, checks: Sequence[Check]) -> tuple[Any, list[str]]:
        gates = [c for c in checks if c.role == "gate"]
        failed = [c for c in gates if c.decision == "FAIL"]
        overall = [c for c in gates if not c.segment and c.metric == "error rate"]
        moved = [c for c in checks if c.role != "gate" and c.decision == "FAIL"]
        if failed:
            reasons = [f"{c.metric} [{c.segment_text}]: {c.reason}" for c in failed]
            reasons += [f"moved with it: {c.metric} [{c.segment_text}]: {c.reason}" for c in moved]
            return "FAIL", reasons
        if not overall or overall[0].canary.count <= 0:
            return "INCONCLUSIVE", ["no traffic"]
        top = [c for c in gates if not c.segment and c.decision == "INCONCLUSIVE"]
        if any(c.metric == "error rate" for c in top) or (
            top and all(c.metric.startswith("latency") for c in top)
        ):
            return "INCONCLUSIVE", [f"{c.metric} [all]: {c.reason}" for c in top]
        reasons = ["no gate check shows a regression beyond its tolerance"]
        reasons += [f"moved (not a gate): {c.metric} [{c.segment_text}]: {c.reason}" for c in moved]
        return "PASS", reasons


def _effect_words(effect: float | None) -> str:
    if effect is None:
        return "effect not measurable yet"
    if math.isinf(effect):
        return "events only in the canary"
    return f"{effect:.2f}x the baseline's rate"
