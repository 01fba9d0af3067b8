"""The timeline for people: a terminal view and Markdown (``-o FILE``).

Both show the same rows: the summary (the first symptom, the first page and the gap between
them, the changes before the symptom), every row in time order with its evidence, where to look
(exemplar trace ids and their correlation ids) and the log lines of the first failed requests.
"""

from __future__ import annotations

import json
from typing import Any

from obskit import _times as times
from obskit.incident.timeline import Row, Timeline, describe

__all__ = ["markdown", "summary_lines", "terminal"]

_LOG_KEYS = ("timestamp", "level", "logger", "event")
_LOG_SKIP = frozenset(("service", "service_version", "environment", "pid", "span_id"))


def summary_lines(timeline: Timeline) -> list[str]:
    """The few sentences an on-call engineer reads first (each a fact of the timeline)."""
    lines: list[str] = []
    symptom = timeline.first_symptom
    if symptom is None:
        lines.append("No route or tenant left its pre-window band in this window.")
    else:
        d = symptom.departure
        lines.append(
            f"First symptom: {symptom.signal} {symptom.where} at {times.iso(d.first)} "
            f"({describe(symptom)})."
        )
        before = [
            c
            for c in timeline.changes_before(d.first)
            if c.at >= timeline.start - timeline.baseline
        ]
        for change in before[-3:]:
            lines.append(
                f"Changed {times.duration_text(d.first - change.at)} before it: {change.what} "
                f"at {times.iso(change.at)}."
            )
        if not before:
            lines.append("No deploy, restart or flag change was seen before it.")
        errors = [m for m in timeline.symptoms if m.kind == "errors"]
        if symptom.kind != "errors" and errors:
            first = errors[0]
            lines.append(
                f"First error symptom: {first.signal} {first.where} at "
                f"{times.iso(first.departure.first)} ({describe(first)})."
            )
        others = sorted({m.where for m in timeline.symptoms} - {symptom.where})
        if others:
            lines.append(f"Also out of band: {'; '.join(others[:5])}.")
    page = timeline.first_page
    if page is not None and page.firing is not None:
        lines.append(f"First page: {page.name} at {times.iso(page.firing)}.")
        gap = timeline.detection_gap
        if gap is not None:
            lines.append(f"From the first symptom to the first page: {times.duration_text(gap)}.")
    elif timeline.tiers:
        lines.append("No page-severity SLOBurn alert fired in the window.")
    return lines


def _header(timeline: Timeline) -> str:
    service = timeline.service or "every service"
    return (
        f"Incident timeline: {service}, {times.iso(timeline.start)} to {times.iso(timeline.end)} "
        f"(band from the {times.duration_text(timeline.baseline)} before; "
        f"{times.duration_text(timeline.step)} intervals; {timeline.queries} Prometheus queries)"
    )


def _exception(value: Any) -> str:
    """A structured exception as its type and message (the frames stay in the log itself)."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return f"{value[0].get('exc_type', '')}: {value[0].get('exc_value', '')}"
    return str(value)[:300]


def _log_line(line: dict[str, Any]) -> str:
    head = " ".join(str(line.get(k, "")) for k in _LOG_KEYS)
    rest = {k: v for k, v in line.items() if k not in _LOG_KEYS and k not in _LOG_SKIP}
    if "exception" in rest:
        rest["exception"] = _exception(rest["exception"])
    return f"{head} {json.dumps(rest, separators=(',', ':'), default=str)}"


def terminal(timeline: Timeline) -> str:
    """The timeline as plain text for a terminal (no colour: it pipes as it reads)."""
    out = [_header(timeline), ""]
    out += [f"  {line}" for line in summary_lines(timeline)]
    out += ["", f"{'TIME':<20}  {'KIND':<10}  WHAT"]
    for row in timeline.rows():
        out.append(f"{times.iso(row.at):<20}  {row.kind:<10}  {row.what}")
        out.append(f"{'':<20}  {'':<10}  evidence: {row.evidence}")
    out += _looks(timeline, markdown=False)
    for note in timeline.notes:
        out.append(f"note: {note}")
    return "\n".join(out) + "\n"


def _looks(timeline: Timeline, markdown: bool) -> list[str]:
    """The exemplars and the first failed requests' log lines (Markdown: sub-sections, the log
    lines in a code block)."""

    def code(text: str) -> str:
        return f"`{text}`" if markdown else text

    def title(text: str) -> list[str]:
        return ["", f"### {text}", ""] if markdown else ["", f"{text}:"]

    out: list[str] = []
    if timeline.exemplars:
        out += title("Kept traces behind the exemplars")
        for e in timeline.exemplars:
            kept = {True: "in the trace file", False: "NOT in the trace file", None: ""}[e.kept]
            cid = f" correlation_id {code(e.correlation_id)}" if e.correlation_id else ""
            what = f"{e.route} tenant {e.tenant}, status {e.status or '-'}"
            line = f"- {e.kind} trace {code(e.trace_id)} at {times.iso(e.at)}: {what}, "
            out.append(f"{line}{e.seconds * 1000:.0f} ms{cid} {kept}".rstrip())
        if timeline.trace_files:
            first = timeline.exemplars[0].trace_id
            show = f"obskit traces {timeline.trace_files[0]} --trace-id {first}"
            out += ["", f"The first one as a tree: {code(show)}"]
    if timeline.logs is not None and timeline.logs.requests:
        out += title("Log lines of the first failed requests")
        for request in timeline.logs.requests:
            out.append(
                f"- correlation_id {code(request.correlation_id)} ({request.route} tenant "
                f"{request.tenant}, status {request.status}, trace {code(request.trace_id)}):"
            )
            lines = [_log_line(line) for line in request.lines]
            out += (
                ["", "  ```", *(f"  {x}" for x in lines), "  ```", ""]
                if markdown
                else [f"    {x}" for x in lines]
            )
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(timeline: Timeline) -> str:
    """The timeline as a Markdown document."""
    out = [f"# {_header(timeline)}", ""]
    out += [f"- {line}" for line in summary_lines(timeline)]
    out += ["", "## Timeline", "", "| time (UTC) | kind | what | evidence |", "|---|---|---|---|"]
    out += [_markdown_row(row) for row in timeline.rows()]
    looks = _looks(timeline, markdown=True)
    if looks:
        out += ["", "## Where to look", *looks]
    if timeline.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in timeline.notes]
    return "\n".join(out) + "\n"


def _markdown_row(row: Row) -> str:
    return f"| {times.iso(row.at)} | {row.kind} | {_cell(row.what)} | `{_cell(row.evidence)}` |"
