"""The tail sampler's own metrics, read at scrape time from its counters.

``obskit_tail_*`` describe the buffer and the decisions, ``obskit_export_*`` the export lanes.
Every span, trace, log line or exemplar the sampler drops, evicts or discards is counted here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from obskit.tracing.export import LOST_AT_SHUTDOWN
from obskit.tracing.policies import LANES

__all__ = ["TailMetrics"]

_EVICTION_REASONS = ("traces", "bytes", "spans")


class TailMetrics(Collector):
    """Exposes the sampler's, the log buffer's and the export lanes' counters.

    ``parts`` returns the live (sampler, log buffer, lanes), any of which may be None: the
    tracing component rebuilds them after a fork, and the collector follows.
    """

    def __init__(self, parts: Callable[[], tuple[Any, Any, Any]]) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        """Yield the current values."""
        sampler, log_buffer, lanes = self._parts()
        if sampler is not None:
            yield from _sampler_metrics(sampler.stats())
        if log_buffer is not None:
            counts = dict(log_buffer.counts)
            _, held_bytes = log_buffer.held()
            lines = CounterMetricFamily(
                "obskit_tail_log_lines",
                "Debug log lines held for undecided traces, by outcome "
                "(held, written when kept, discarded when dropped, overflow past the caps).",
                labels=["outcome"],
            )
            for outcome in ("held", "written", "discarded", "overflow"):
                lines.add_metric([outcome], counts.get(outcome, 0))
            yield lines
            yield GaugeMetricFamily(
                "obskit_tail_log_buffered_bytes",
                "Bytes of debug log lines held for undecided traces.",
                value=held_bytes,
            )
        if lanes is not None:
            yield from _lane_metrics(lanes)
        yield _lost_at_shutdown()


def _sampler_metrics(stats: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "obskit_tail_buffered_traces", "Undecided traces held by the tail sampler.", stats["traces"]
    )
    yield GaugeMetricFamily(
        "obskit_tail_buffered_spans", "Spans held for undecided traces.", stats["spans"]
    )
    yield GaugeMetricFamily(
        "obskit_tail_buffered_bytes",
        "Estimated bytes of spans held for undecided traces.",
        stats["bytes"],
    )
    decisions = CounterMetricFamily(
        "obskit_tail_decisions",
        "Trace decisions by outcome, the rule that decided and what triggered the decision.",
        labels=["decision", "rule", "trigger"],
    )
    for (keep, rule, trigger), count in sorted(stats["decisions"].items()):
        decisions.add_metric(["keep" if keep else "drop", rule, trigger], count)
    yield decisions
    yield _by_label(
        "obskit_tail_evictions",
        "Undecided traces decided early because a cap was reached (traces, bytes, spans).",
        "reason",
        stats["evictions"],
        _EVICTION_REASONS,
    )
    yield _by_label(
        "obskit_tail_late_spans",
        "Spans that ended after their trace was decided: following a keep, following a drop "
        "(discarded), or rescued (a late error in a dropped trace, exported and flagged).",
        "decision",
        stats["late"],
        ("kept", "dropped", "rescued"),
    )
    yield _by_label(
        "obskit_tail_spans",
        "Spans by the decision of their trace.",
        "decision",
        stats["spans_out"],
        ("kept", "dropped"),
    )
    yield _by_label(
        "obskit_tail_exemplars",
        "Metric exemplars offered for a trace: applied when it was kept, discarded when dropped, "
        "overflow past the per-trace limit.",
        "outcome",
        stats["exemplars"],
        ("applied", "discarded", "overflow"),
    )
    memory = GaugeMetricFamily(
        "obskit_tail_remembered_traces",
        "Decided traces remembered so that late spans follow their decision.",
        labels=["decision"],
    )
    for outcome in ("kept", "dropped"):
        memory.add_metric([outcome], stats["memory"][outcome])
    yield memory


def _by_label(
    name: str, documentation: str, label: str, counts: dict[str, int], values: tuple[str, ...]
) -> CounterMetricFamily:
    """A counter family with one sample per value of ``label`` (0 where nothing was counted)."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value in values:
        family.add_metric([value], counts.get(value, 0))
    return family


def _lane_metrics(lanes: Any) -> Iterator[Metric]:
    counts = {outcome: dict(by_lane) for outcome, by_lane in lanes.counts.items()}
    spans = CounterMetricFamily(
        "obskit_export_spans",
        "Kept spans handed to the exporter, by lane (error, rule, slow, baseline: the first lanes "
        "go first) and result (exported, failed, dropped: no room, or pushed out by a higher "
        "lane).",
        labels=["lane", "result"],
    )
    for result in ("exported", "failed", "dropped"):
        for lane, count in sorted(counts[result].items()):
            spans.add_metric([lane, result], count)
    yield spans
    queued = GaugeMetricFamily(
        "obskit_export_queued_spans", "Kept spans waiting for export, by lane.", labels=["lane"]
    )
    for lane, count in sorted(lanes.queued().items()):
        queued.add_metric([lane], count)
    yield queued


def _lost_at_shutdown() -> Metric:
    # Process-wide (see obskit.tracing.export.LOST_AT_SHUTDOWN): a runtime shows what an earlier
    # one's shutdown lost.
    lost = dict(LOST_AT_SHUTDOWN)
    family = CounterMetricFamily(
        "obskit_export_lost_at_shutdown_spans",
        "Spans a shutdown could not export by its deadline, by lane and stage (in_flight: sent, "
        "unconfirmed by the exporter; queued; undecided, lane none: still buffered, the buffer "
        "busy). Process-wide: it outlives the runtime that lost them.",
        labels=["lane", "stage"],
    )
    for lane in LANES:
        for stage in ("in_flight", "queued"):
            family.add_metric([lane, stage], lost.get((lane, stage), 0))
    family.add_metric(["none", "undecided"], lost.get(("none", "undecided"), 0))
    return family
