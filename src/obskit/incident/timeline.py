"""The incident timeline: everything obskit measured about a window, each row with its evidence.

:func:`gather` asks Prometheus (and reads log files and the kept-trace file, when given) and
returns a :class:`Timeline`: what changed (:mod:`~obskit.incident.changes`), how it was detected
(:mod:`~obskit.incident.detection`), the symptoms and the saturation that moved
(:mod:`~obskit.incident.signals`, by the rule in :mod:`~obskit.incident.departures`), where to
look (:mod:`~obskit.incident.exemplars`) and the first failed requests' log lines
(:mod:`~obskit.incident.logs`). :meth:`Timeline.rows` puts them in time order for
:mod:`~obskit.incident.render`; :meth:`Timeline.to_json` is what a machine (or a test) reads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obskit import _times as times
from obskit._prometheus import MAX_POINTS, Prometheus, PrometheusError
from obskit.incident import changes as changes_module
from obskit.incident import detection, exemplars, signals
from obskit.incident.changes import Change
from obskit.incident.detection import Tier
from obskit.incident.exemplars import Exemplar
from obskit.incident.logs import LogScan, scan
from obskit.incident.signals import Movement, Window
from obskit.metrics import promql

__all__ = ["Row", "Timeline", "gather"]


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the timeline: when, what kind, what happened, and the evidence for it."""

    at: float
    kind: str
    what: str
    evidence: str


@dataclasses.dataclass
class Timeline:
    """What happened in ``[start, end]`` for ``service``, from ``prometheus``."""

    prometheus: str
    service: str | None
    start: float
    end: float
    baseline: float
    step: float
    targets: list[dict[str, str]]
    changes: list[Change]
    tiers: list[Tier]
    symptoms: list[Movement]
    saturation: list[Movement]
    exemplars: list[Exemplar]
    exemplar_query: str
    budgets: list[dict[str, Any]]
    logs: LogScan | None
    notes: list[str]
    queries: int = 0
    trace_files: list[str] = dataclasses.field(default_factory=list)

    @property
    def first_symptom(self) -> Movement | None:
        """The earliest departure of any route and tenant (the first symptom)."""
        return self.symptoms[0] if self.symptoms else None

    @property
    def first_page(self) -> Tier | None:
        """The first ``severity="page"`` tier that fired."""
        fired = [t for t in self.tiers if t.severity == "page" and t.firing is not None]
        return min(fired, key=lambda t: t.firing or 0.0) if fired else None

    @property
    def detection_gap(self) -> float | None:
        """Seconds from the first symptom's interval end to the first page."""
        symptom, page = self.first_symptom, self.first_page
        if symptom is None or page is None or page.firing is None:
            return None
        return page.firing - symptom.departure.first

    def changes_before(self, moment: float) -> list[Change]:
        """Changes at or before ``moment`` (deploys, restarts, flags, markers)."""
        return [c for c in self.changes if c.at <= moment]

    def rows(self) -> list[Row]:
        """Every row in time order (changes first among equal times)."""
        out = [Row(c.at, c.kind, c.what, c.evidence) for c in self.changes]
        for tier in self.tiers:
            out += _tier_rows(tier)
        for movement in self.symptoms:
            out += _movement_rows(movement, "symptom")
        for movement in self.saturation:
            out += _movement_rows(movement, "saturation")
        # Where to look: the first kept trace of each kind and the first failed request's
        # lines (every one is listed in its own section).
        for kind in ("error", "slow"):
            of_kind = [e for e in self.exemplars if e.kind == kind]
            if of_kind:
                first = min(of_kind, key=lambda e: e.at)
                who = f" correlation_id={first.correlation_id}" if first.correlation_id else ""
                what = (
                    f"first {kind} trace {first.trace_id} ({first.route} tenant={first.tenant} "
                    f"status={first.status or '-'}, {first.seconds * 1000:.0f} ms){who}"
                )
                out.append(Row(first.at, "trace", what, f"exemplar of {self.exemplar_query}"))
        if self.logs is not None and self.logs.requests:
            request = self.logs.requests[0]
            what = (
                f"first failed request in the logs: {request.correlation_id} ({request.route} "
                f"tenant={request.tenant} status={request.status}), {len(request.lines)} lines"
            )
            out.append(Row(request.at, "log", what, f"{request.source}: http.request"))
        order = {"deploy": 0, "restart": 0, "start": 0, "flag": 0, "marker": 0}
        return sorted(out, key=lambda r: (r.at, order.get(r.kind, 1)))

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (times in seconds since the epoch)."""
        return {
            "prometheus": self.prometheus,
            "service": self.service,
            "start": self.start,
            "end": self.end,
            "baseline": self.baseline,
            "step": self.step,
            "targets": self.targets,
            "changes": [c.to_json() for c in self.changes],
            "tiers": [t.to_json() for t in self.tiers],
            "symptoms": [m.to_json() for m in self.symptoms],
            "saturation": [m.to_json() for m in self.saturation],
            "exemplars": [e.to_json() for e in self.exemplars],
            "budgets": self.budgets,
            "logs": [r.to_json() for r in self.logs.requests] if self.logs else None,
            "first_symptom": self.first_symptom.to_json() if self.first_symptom else None,
            "first_page": self.first_page.to_json() if self.first_page else None,
            "detection_gap": self.detection_gap,
            "rows": [dataclasses.asdict(r) for r in self.rows()],
            "notes": self.notes,
            "queries": self.queries,
        }


def _tier_rows(tier: Tier) -> list[Row]:
    rows = []
    evidence = tier.evidence
    if tier.burning is not None:
        factor = f"{tier.factor:g}x" if tier.factor is not None else "its factor"
        what = f"{tier.name}: burn over {tier.short_window} above {factor}"
        rows.append(Row(tier.burning, "burn", what, evidence.get("burning", "")))
    if tier.pending is not None:
        hold = f" (for: {times.duration_text(tier.hold)})" if tier.hold else ""
        what = f"{tier.name}: alert pending{hold}, both windows above the factor"
        rows.append(Row(tier.pending, "pending", what, evidence.get("pending", "")))
    if tier.firing is not None:
        kind = "page" if tier.severity == "page" else "alert"
        owner = f" -> {tier.owner}" if tier.owner else ""
        runbook = f" runbook {tier.runbook_url}" if tier.runbook_url else ""
        what = f"{tier.name}: SLOBurn firing{owner}{runbook}"
        rows.append(Row(tier.firing, kind, what, evidence.get("firing", "")))
    if tier.resolved is not None:
        what = f"{tier.name}: SLOBurn resolved"
        rows.append(Row(tier.resolved, "resolved", what, evidence.get("firing", "")))
    return rows


def describe(movement: Movement) -> str:
    """How far a movement went, in words: ``error ratio 0.4% -> 100% (12 of 12)``."""
    d = movement.departure
    if movement.kind == "errors":
        return (
            f"error ratio {_pct(d.baseline)} -> {_pct(d.first_value)}, worst {_pct(d.worst_value)}"
        )
    if movement.kind == "latency":
        base, first, worst = movement.p99
        return (
            f"p99 {_ms(base)} -> {_ms(first)}, worst {_ms(worst)} "
            f"(share above {_ms(movement.edge)}: {_pct(d.baseline)} -> {_pct(d.first_value)})"
        )
    return f"{_num(d.baseline)} before -> {_num(d.first_value)}, worst {_num(d.worst_value)}"


def _movement_rows(movement: Movement, kind: str) -> list[Row]:
    d = movement.departure
    rows = [
        Row(
            d.first,
            kind,
            f"{movement.signal} {movement.where}: {describe(movement)}",
            movement.query,
        )
    ]
    if d.recovered is not None:
        rows.append(
            Row(
                d.recovered,
                "recovery",
                f"{movement.signal} {movement.where}: back within band",
                movement.query,
            )
        )
    return rows


def _pct(value: float | None) -> str:
    if value is None:
        return "?"
    percent = value * 100
    return f"{percent:.2g}%" if percent < 10 else f"{percent:.0f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.0f} s"


def _num(value: float) -> str:
    return f"{value:.3g}"


def _scope(targets: Sequence[dict[str, str]]) -> tuple[promql.Matcher, ...]:
    jobs = sorted({t.get("job", "") for t in targets if t.get("job")})
    instances = sorted({t.get("instance", "") for t in targets if t.get("instance")})
    matchers = []
    if jobs:
        matchers.append(promql.one_of("job", jobs))
    if instances:
        matchers.append(promql.one_of("instance", instances))
    return tuple(matchers)


def _readable(logs: Sequence[str], traces: Sequence[Path]) -> None:
    """Fail before the first query when a log or trace file cannot be read (OSError)."""
    for name in logs:
        if name != "-":
            with open(name, "rb"):
                pass
    for path in traces:
        if not path.exists() and not Path(f"{path}.1").exists():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))


def gather(
    prometheus_url: str | Any,
    start: float,
    end: float,
    *,
    service: str | None = None,
    baseline: float | None = None,
    step: float | None = None,
    logs: Sequence[str] = (),
    traces: Sequence[Path] = (),
    slos: Sequence[str] = (),
    exemplar_limit: int = 10,
    log_limit: int = 3,
    timeout: float = 30.0,
) -> Timeline:
    """The timeline of ``[start, end]`` (seconds since the epoch) from ``prometheus_url``: a
    base URL, or a client with the same methods (such as
    :class:`obskit.replay.client.RecordedPrometheus` over recorded scrapes). ``baseline``:
    seconds before ``start`` that define each signal's band (default: the window's length, at
    least 10 min); ``step``: the interval (default: the window / 60, at least 15 s).
    PrometheusError if Prometheus cannot be read at all; ValueError if the window has more steps
    than one range query answers."""
    _readable(logs, traces)
    length = end - start
    step = float(step or max(15, round(length / 60)))
    baseline = float(baseline or max(600.0, length))
    # Whole steps, so that interval ends fall on the window's start.
    baseline = step * max(1, round(baseline / step))
    intervals = math.ceil((length + baseline) / step - 1e-9)
    if intervals >= MAX_POINTS:
        # Prometheus would answer a coarser range than each increase()[step] reads: refuse.
        raise ValueError(
            f"the window and its baseline in steps of {step:g} s are {intervals} intervals; "
            f"at most {MAX_POINTS - 1} (a longer --step)"
        )
    # A URL, or anything answering the same calls (obskit.replay's recorded Prometheus).
    client = (
        Prometheus(prometheus_url, timeout) if isinstance(prometheus_url, str) else prometheus_url
    )
    prometheus_url = client.url
    window = Window(start, end, baseline, step)
    notes: list[str] = []
    targets = changes_module.service_targets(client, service, window)
    if service and not targets:
        between = f"{times.iso(start - baseline)} and {times.iso(end)}"
        raise PrometheusError(
            f"no obskit_build_info{{service_name={service!r}}} between {between}: "
            f"is the service scraped by {prometheus_url}?"
        )
    window = dataclasses.replace(window, scope=_scope(targets) if service else ())

    def attempt(what: str, call: Any, default: Any) -> Any:
        try:
            return call()
        except PrometheusError as exc:
            if not exc.answered:
                raise  # unreachable, or not Prometheus: every further question fails alike
            notes.append(f"{what}: {exc}")
            return default

    found_changes: list[Change] = attempt(
        "deploys", lambda: changes_module.build_changes(client, service, window), []
    )
    found_changes += attempt("flags", lambda: changes_module.flag_changes(client, window), [])
    tiers = attempt("SLO tiers", lambda: detection.tiers(client, window, slos), [])
    symptoms, edges = signals.symptoms(client, window)
    saturation = attempt("saturation", lambda: signals.saturation(client, window), [])
    found, query = attempt(
        "exemplars",
        lambda: exemplars.find(client, window, symptoms, edges, exemplar_limit),
        ([], ""),
    )
    budgets = attempt(
        "error budget",
        lambda: detection.budget_spent(client, window, sorted({t.slo for t in tiers})),
        [],
    )
    scanned = None
    if logs:
        hurt = [(m.labels.get("http_route", ""), m.labels.get("tenant_id", "")) for m in symptoms]
        scanned = scan(logs, start, end, start - baseline, hurt, log_limit)
        found_changes += [c for c in scanned.changes if c.at >= start - baseline]
        by_trace = {r.trace_id: r.correlation_id for r in scanned.requests}
        for exemplar in found:
            exemplar.correlation_id = exemplar.correlation_id or by_trace.get(exemplar.trace_id, "")
    if traces:
        kept = exemplars.kept_traces(traces, {e.trace_id for e in found})
        for exemplar in found:
            entry = kept.get(exemplar.trace_id)
            exemplar.kept = entry is not None
            if entry and entry.get("correlation_id"):
                exemplar.correlation_id = entry["correlation_id"]
    if not tiers:
        notes.append(
            "no SLOBurn alert burned, was pending or fired (rules from `obskit slo rules`)"
        )
    if not found:
        notes.append("no exemplar of a failed or slow request (Prometheus needs exemplar storage)")
    return Timeline(
        prometheus=prometheus_url,
        service=service,
        start=start,
        end=end,
        baseline=baseline,
        step=step,
        targets=targets,
        changes=sorted(found_changes, key=lambda c: c.at),
        tiers=tiers,
        symptoms=symptoms,
        saturation=saturation,
        exemplars=found,
        exemplar_query=query,
        budgets=budgets,
        logs=scanned,
        notes=notes,
        queries=client.calls,
        trace_files=[str(p) for p in traces],
    )
