"""Logs for the timeline: obskit's JSON lines, from files or a stream, no log store assumed.

One pass over each source (a file, or ``-`` for standard input), in bounded memory:

- the **first failed requests** — access lines (``event: http.request``) with a 5xx status in
  the window, those of a symptom's route and tenant first — with every line of the same
  correlation id (the lines a request writes before its access line are held for the most recent
  :data:`RECENT` correlation ids, at most :data:`PER_REQUEST` lines each);
- **changes**: deploy markers (``deployment.marked``) and the OpenFeature hook's flag changes
  (``feature_flag.evaluation`` with ``feature_flag.previous_variant``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from obskit.incident.changes import Change

__all__ = ["LogRequest", "LogScan", "scan"]

ACCESS = "http.request"
DEPLOY = "deployment.marked"
FLAG = "feature_flag.evaluation"
RECENT = 5000
PER_REQUEST = 50


@dataclasses.dataclass
class LogRequest:
    """A failed request and its log lines, in the order they were written."""

    correlation_id: str
    trace_id: str
    at: float
    route: str
    tenant: str
    status: int
    source: str
    in_symptom: bool
    lines: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class LogScan:
    """What the logs said: failed requests, changes, and how many lines were read."""

    requests: list[LogRequest]
    changes: list[Change]
    lines: int
    failed: int
    unreadable: int


def _time(line: dict[str, Any]) -> float | None:
    text = line.get("timestamp")
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclasses.dataclass
class _Source:
    name: str
    start: float
    end: float
    reach: float
    hurt: set[tuple[str, str]]
    limit: int
    held: OrderedDict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=OrderedDict)
    chosen: dict[str, LogRequest] = dataclasses.field(default_factory=dict)
    fallback: dict[str, LogRequest] = dataclasses.field(default_factory=dict)
    changes: list[Change] = dataclasses.field(default_factory=list)
    lines: int = 0
    failed: int = 0
    unreadable: int = 0

    def feed(self, raw: str) -> None:
        self.lines += 1
        try:
            line = json.loads(raw)
        except ValueError:
            self.unreadable += 1
            return
        if not isinstance(line, dict):
            self.unreadable += 1
            return
        at = _time(line)
        if at is None or not self.reach <= at <= self.end:
            return
        event = line.get("event")
        if event == DEPLOY:
            self.changes.append(_marker(line, at, self.name))
        elif event == FLAG and "feature_flag.previous_variant" in line:
            self.changes.append(_flag(line, at, self.name))
        cid = line.get("correlation_id")
        if not isinstance(cid, str) or not cid or at < self.start:
            return
        picked = self.chosen.get(cid) or self.fallback.get(cid)
        if picked is not None:
            if len(picked.lines) < PER_REQUEST:
                picked.lines.append(line)
            return
        held = self.held.pop(cid, [])
        if len(held) < PER_REQUEST:
            held.append(line)
        if event == ACCESS and _status(line) >= 500:
            self.failed += 1
            self._failed(cid, at, line, held)
            return
        self.held[cid] = held
        if len(self.held) > RECENT:
            self.held.popitem(last=False)

    def _failed(
        self, cid: str, at: float, line: dict[str, Any], held: list[dict[str, Any]]
    ) -> None:
        route, tenant = str(line.get("route", "")), str(line.get("tenant_id", ""))
        hurt = (route, tenant) in self.hurt
        target = self.chosen if hurt else self.fallback
        if len(target) >= self.limit:
            return
        target[cid] = LogRequest(
            correlation_id=cid,
            trace_id=str(line.get("trace_id", "")),
            at=at,
            route=route,
            tenant=tenant,
            status=_status(line),
            source=self.name,
            in_symptom=hurt,
            lines=held,
        )


def _status(line: dict[str, Any]) -> int:
    status = line.get("status")
    return status if isinstance(status, int) else 0


def _marker(line: dict[str, Any], at: float, source: str) -> Change:
    service, version = line.get("service.name", ""), line.get("service.version", "")
    environment = line.get("deployment.environment.name", "")
    finished = _time({"timestamp": line.get("deployment.finished")}) or at
    facts = {
        "service": service,
        "version": version,
        "environment": environment,
        "deployment_id": line.get("deployment.id", ""),
        "description": line.get("deployment.description", ""),
        "url": line.get("deployment.url", ""),
        "revision": line.get("vcs.ref.head.revision", ""),
        "source": source,
    }
    what = f"deploy marker: {service} {version} to {environment}"
    if facts["description"]:
        what += f" ({facts['description']})"
    return Change(finished, "marker", what, f"{source}: {DEPLOY} at {line.get('timestamp')}", facts)


def _flag(line: dict[str, Any], at: float, source: str) -> Change:
    key = str(line.get("feature_flag.key", ""))
    variant = str(line.get("feature_flag.result.variant", ""))
    previous = str(line.get("feature_flag.previous_variant", ""))
    what = f"flag {key}: {previous} -> {variant}" if previous else f"flag {key}: {variant}"
    facts = {
        "flag": key,
        "variant": variant,
        "previous": previous,
        "service": line.get("service", ""),
    }
    return Change(at, "flag", what, f"{source}: {FLAG} at {line.get('timestamp')}", facts)


def _lines(path: str) -> Iterator[tuple[str, IO[str]]]:
    if path == "-":
        yield "stdin", sys.stdin
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        yield path, handle


def scan(
    paths: Sequence[str],
    start: float,
    end: float,
    reach: float,
    hurt: Iterable[tuple[str, str]] = (),
    limit: int = 3,
) -> LogScan:
    """Read each source once: the first ``limit`` failed requests in ``[start, end]`` (those of
    a ``hurt`` (route, tenant) first) and the changes in ``[reach, end]``."""
    wanted = set(hurt)
    requests: list[LogRequest] = []
    fallbacks: list[LogRequest] = []
    changes: list[Change] = []
    totals = [0, 0, 0]
    for path in paths:
        for name, handle in _lines(path):
            source = _Source(
                Path(name).name if name != "stdin" else name, start, end, reach, wanted, limit
            )
            for raw in handle:
                if raw.strip():
                    source.feed(raw)
            requests += source.chosen.values()
            fallbacks += source.fallback.values()
            changes += source.changes
            totals[0] += source.lines
            totals[1] += source.failed
            totals[2] += source.unreadable
    picked = (
        sorted(requests, key=lambda r: r.at)[:limit]
        or sorted(fallbacks, key=lambda r: r.at)[:limit]
    )
    for request in picked:
        # Debug lines held for a kept trace are written after the access line: time order.
        request.lines.sort(key=lambda line: _time(line) or 0.0)
    return LogScan(picked, _dedupe(changes), *totals)


def _dedupe(changes: list[Change]) -> list[Change]:
    """One row per flag change (every process logs its own) and per deployment id."""
    seen: set[tuple[Any, ...]] = set()
    out: list[Change] = []
    for change in sorted(changes, key=lambda c: c.at):
        facts = change.facts
        key = (
            ("flag", facts.get("flag"), facts.get("previous"), facts.get("variant"))
            if change.kind == "flag"
            else ("marker", facts.get("deployment_id"))
        )
        if key in seen:
            continue
        seen.add(key)
        out.append(change)
    return out
