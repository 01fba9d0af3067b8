"""What changed: deploys, restarts and flag changes, from Prometheus alone.

- ``obskit_build_info`` has one series per running process (its labels carry the version, the
  revision and the process start): per instance, each new series is a **start** — a **deploy**
  when its version differs from the instance's previous one, a **restart** when it does not, an
  instance's first start otherwise. The time is the series' ``process_start_time`` label (exact),
  else the first step it was seen at.
- ``obskit_feature_flag_evaluations_total`` (allowed flags only, written by the OpenFeature hook):
  a variant a flag starts returning (its evaluations increase after a baseline in which they did
  not) is a **flag change**; so is a variant that stops.

Log files add deploy markers and the hook's ``feature_flag.evaluation`` events (see
:mod:`obskit.incident.logs`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from obskit import _times as times
from obskit._prometheus import Prometheus, Series
from obskit.incident.signals import Window
from obskit.metrics import catalogue, promql
from obskit.metrics.promql import Selector

__all__ = ["Change", "build_changes", "flag_changes", "service_targets"]

TARGET = ("job", "instance")


@dataclasses.dataclass(frozen=True)
class Change:
    """One change: ``kind`` is ``deploy``, ``restart``, ``start``, ``flag`` or ``marker``."""

    at: float
    kind: str
    what: str
    evidence: str
    facts: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dataclasses.asdict(self)


def _build_selector(service: str | None) -> Selector:
    info = Selector(catalogue.BUILD_INFO.sample)
    return info.where(service_name=service) if service else info


def service_targets(
    prometheus: Prometheus, service: str | None, window: Window
) -> list[dict[str, str]]:
    """The ``(job, instance)`` of every target that reported ``service`` (any, when None) in
    the baseline or the window."""
    reach = int(window.end - window.start + window.baseline)
    expr = promql.aggregate(
        "max", promql.over_time("max", _build_selector(service), promql.span(reach)), TARGET
    )
    return [dict(s.labels) for s in prometheus.query(expr, window.end)]


def _started(series: Series) -> float:
    label = series.labels.get("process_start_time", "")
    if label:
        try:
            return times.parse_time(label)
        except ValueError:
            pass
    return series.points[0][0] if series.points else math.nan


def build_changes(prometheus: Prometheus, service: str | None, window: Window) -> list[Change]:
    """Deploys, restarts and first starts per instance within the window."""
    selector = _build_selector(service).matching(*window.scope)
    found = prometheus.range(str(selector), window.first, window.end, window.step)
    by_target: dict[tuple[str, str], list[Series]] = defaultdict(list)
    for series in found:
        if series.points:
            by_target[(series.labels.get("job", ""), series.labels.get("instance", ""))].append(
                series
            )
    for runs in by_target.values():
        runs.sort(key=lambda s: (s.points[0][0], _started(s)))
    # Versions running when the reading starts; a new instance with another one is a deploy too
    # (replaced pods have new instance labels: no instance changes version by itself).
    seen_versions = {
        run.labels.get("service_version", "")
        for runs in by_target.values()
        for run in runs
        if run.points[0][0] <= window.first + 1e-6
    }
    changes: list[Change] = []
    for (job, instance), runs in sorted(by_target.items(), key=lambda kv: kv[1][0].points[0][0]):
        previous: Series | None = None
        for run in runs:
            at = _started(run)
            seen_first = run.points[0][0]
            # A run already there when the reading starts began before it: not a change here.
            if seen_first <= window.first + 1e-6 or at <= window.start - window.baseline:
                previous = run
                continue
            version = run.labels.get("service_version", "")
            revision = run.labels.get("vcs_revision", "")
            facts = {
                "job": job,
                "instance": instance,
                "service": run.labels.get("service_name", ""),
                "version": version,
                "revision": revision,
                "process_start_time": run.labels.get("process_start_time", ""),
                "first_seen": seen_first,
            }
            if previous is None and seen_versions and version not in seen_versions:
                old = ", ".join(sorted(seen_versions))
                kind, what = (
                    "deploy",
                    f"{instance}: new instance with version {version} (was {old})",
                )
                facts["previous_version"] = old
            elif previous is None:
                kind, what = "start", f"{instance} started version {version}"
            elif previous.labels.get("service_version") != version:
                old = previous.labels.get("service_version", "")
                kind, what = "deploy", f"{instance}: version {old} -> {version}"
                facts["previous_version"] = old
                facts["previous_revision"] = previous.labels.get("vcs_revision", "")
            else:
                kind, what = "restart", f"{instance} restarted (version {version})"
            if revision:
                what += f" (revision {revision[:12]})"
            evidence = (
                f'{catalogue.BUILD_INFO.sample}{{instance="{instance}",service_version="{version}",'
                f'process_start_time="{facts["process_start_time"]}"}} first seen '
                f"{times.iso(seen_first)}"
            )
            changes.append(Change(at, kind, what, evidence, facts))
            seen_versions.add(version)
            previous = run
    return sorted(changes, key=lambda c: c.at)


def flag_changes(prometheus: Prometheus, window: Window) -> list[Change]:
    """Variants that flags started or stopped returning within the window."""
    family = catalogue.FEATURE_FLAG_EVALUATIONS
    expr = window.increase(Selector(family.sample), ["feature_flag_key", "feature_flag_variant"])
    changes: list[Change] = []
    for series in window.read(prometheus, expr):
        key = series.labels.get("feature_flag_key", "")
        variant = series.labels.get("feature_flag_variant", "")
        points = [(at, v) for at, v in series.points if not math.isnan(v)]
        changes += _variant_changes(key, variant, points, window, expr)
    return sorted(changes, key=lambda c: c.at)


def _variant_changes(
    key: str, variant: str, points: Sequence[tuple[float, float]], window: Window, expr: str
) -> list[Change]:
    active_before = any(v > 0 for at, v in points if at <= window.start)
    found: list[Change] = []
    active = active_before
    quiet_run = 0
    for at, value in points:
        if at <= window.start:
            continue
        if value > 0 and not active:
            what = f"flag {key}: variant {variant} served"
            facts = {"flag": key, "variant": variant, "change": "started"}
            found.append(
                Change(at - window.step, "flag", what, f"{expr} > 0 from {times.iso(at)}", facts)
            )
            active, quiet_run = True, 0
        elif value <= 0 and active:
            quiet_run += 1
            # Three quiet intervals in a row: the variant stopped (not just a lull in traffic).
            if quiet_run == 3:
                stopped = at - 3 * window.step
                what = f"flag {key}: variant {variant} no longer served"
                facts = {"flag": key, "variant": variant, "change": "stopped"}
                found.append(
                    Change(stopped, "flag", what, f"{expr} == 0 from {times.iso(stopped)}", facts)
                )
                active = False
        else:
            quiet_run = 0
    return found
