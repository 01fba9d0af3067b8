"""Kept traces read back from the local trace file: grouped by trace, ordered as trees.

The local sink (:mod:`obskit.tracing.sinks`) writes one JSON object per kept span. This module is
the one reader of that format, for ``obskit traces`` and the demo's report: it groups spans into
:class:`Trace` objects, orders each trace's spans depth-first from its root, and turns them into
waterfall bars.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from obskit._terminal import Bar

__all__ = ["Trace", "bars", "group", "ordered", "read_spans", "sink_files", "trace_rule"]

RULE = "obskit.sampling.rule"


def sink_files(path: str | Path) -> list[Path]:
    """The trace file and its rotated predecessor (``<path>.1``), oldest first, those that exist."""
    base = Path(path)
    return [p for p in (Path(f"{base}.1"), base) if p.is_file()]


def read_spans(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], int]:
    """Every span record in ``paths``, and how many lines were not span records."""
    spans: list[dict[str, Any]] = []
    skipped = 0
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    skipped += 1
                    continue
                if isinstance(record, dict) and record.get("trace_id") and record.get("span_id"):
                    spans.append(record)
                else:
                    skipped += 1
    return spans, skipped


def trace_rule(spans: Sequence[dict[str, Any]]) -> str:
    """Why the trace was kept: the sampling rule its spans carry."""
    for span in spans:
        rule = (span.get("attributes") or {}).get(RULE)
        if rule:
            return str(rule)
    return "unknown"


def ordered(spans: Sequence[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Spans depth-first from the root(s), each with its depth; siblings by start time."""
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    ids = {span["span_id"] for span in spans}
    for span in spans:
        parent = span.get("parent_span_id")
        children[parent if parent in ids else None].append(span)
    out: list[tuple[int, dict[str, Any]]] = []
    stack = [(0, span) for span in reversed(_by_start(children.get(None, [])))]
    while stack:  # iterative: a deep trace cannot exhaust the recursion limit
        depth, span = stack.pop()
        out.append((depth, span))
        stack.extend((depth + 1, c) for c in reversed(_by_start(children.get(span["span_id"], []))))
    return out


def _by_start(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(spans, key=lambda s: int(s.get("start_time_unix_nano") or 0))


@dataclasses.dataclass
class Trace:
    """One kept trace: its spans and what a listing shows about it."""

    trace_id: str
    spans: list[dict[str, Any]]

    @property
    def start_ns(self) -> int:
        """When its first span started (ns since the epoch)."""
        return min(int(s.get("start_time_unix_nano") or 0) for s in self.spans)

    @property
    def end_ns(self) -> int:
        """When its last span ended."""
        return max(int(s.get("end_time_unix_nano") or 0) for s in self.spans)

    @property
    def duration_ms(self) -> float:
        """From its first start to its last end."""
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def rule(self) -> str:
        """Why it was kept."""
        return trace_rule(self.spans)

    @property
    def root(self) -> dict[str, Any]:
        """Its earliest top-level span (the local root, or the first of several)."""
        return ordered(self.spans)[0][1]

    def routes(self) -> set[str]:
        """Every ``http.route`` its spans carry."""
        return {
            str(route)
            for span in self.spans
            if (route := (span.get("attributes") or {}).get("http.route")) is not None
        }

    def failed(self) -> bool:
        """Whether a span of it has ERROR status."""
        return any(span.get("status") == "ERROR" for span in self.spans)


def group(spans: Iterable[dict[str, Any]]) -> dict[str, Trace]:
    """Spans by trace id (a trace split over the rotated and the current file is joined)."""
    by_id: dict[str, Trace] = {}
    for span in spans:
        trace_id = str(span.get("trace_id"))
        trace = by_id.get(trace_id)
        if trace is None:
            trace = by_id[trace_id] = Trace(trace_id, [])
        trace.spans.append(span)
    return by_id


def bars(spans: Sequence[dict[str, Any]], *, mark_errors: bool = False) -> list[Bar]:
    """The waterfall bars of a trace: ``service: name`` indented by depth, times in seconds."""
    out = []
    for depth, span in ordered(spans):
        failed = span.get("status") == "ERROR"
        label = f"{'  ' * depth}{span.get('service')}: {span.get('name')}"
        if failed and mark_errors:
            label += " (ERROR)"
        out.append(
            Bar(
                label,
                int(span.get("start_time_unix_nano") or 0) / 1e9,
                int(span.get("end_time_unix_nano") or 0) / 1e9,
                failed,
            )
        )
    return out


def default_path() -> str:
    """The trace file obskit would write with the current environment's settings."""
    from obskit._config import load_settings
    from obskit.tracing.sinks import default_sink_path

    settings = load_settings({}, os.environ)
    return settings.trace_sink or default_sink_path(settings.service_name)
