"""A blameless postmortem draft from the timeline's evidence, and nothing else.

Every sentence is built from a measured fact of the :class:`~obskit.incident.timeline.Timeline`
(a series, an alert, a log line) and says where it comes from; what obskit cannot measure — what
people did, why the change was made, who owns an action — is left as a marked gap for the team.
Contributing factors are conditions of the system, never people. The action items each propose
a guardrail obskit can enforce: a canary check on the indicator that moved first, an objective
or tier that would have paged earlier, a runbook step.
"""

from __future__ import annotations

import shlex

from obskit import _times as times
from obskit.incident.changes import Change
from obskit.incident.render import summary_lines
from obskit.incident.signals import ROUTE, TENANT, Movement
from obskit.incident.timeline import Timeline, describe

__all__ = ["TODO", "draft"]

TODO = "_to be completed by the team_"


def _title(timeline: Timeline) -> str:
    symptom = timeline.first_symptom
    service = timeline.service or "services"
    if symptom is None:
        window = f"{times.iso(timeline.start)} and {times.iso(timeline.end)}"
        return f"{service}: no symptom measured between {window}"
    return (
        f"{service}: {symptom.signal} on {symptom.where} from {times.iso(symptom.departure.first)}"
    )


def _leading(timeline: Timeline) -> Movement | None:
    """The indicator that moved first: a saturation signal before the first symptom, else the
    first symptom itself."""
    moved = [*timeline.symptoms, *timeline.saturation]
    return min(moved, key=lambda m: m.departure.first) if moved else None


def _deploy_before(timeline: Timeline) -> Change | None:
    """The last deploy before the first symptom that followed a deploy (a latency blip before
    the deploy does not hide the deploy that preceded the rest)."""
    for symptom in timeline.symptoms:
        deploys = [
            c for c in timeline.changes_before(symptom.departure.first) if c.kind == "deploy"
        ]
        if deploys:
            return deploys[-1]
    return None


def _impact(timeline: Timeline) -> list[str]:
    out = ["## Impact", ""]
    if not timeline.symptoms:
        return [*out, "No route or tenant left its pre-window band: no measured impact.", ""]
    out += [
        "| route | tenant | signal | first interval end | back within band | requests | bad |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in timeline.symptoms:
        d = m.departure
        back = times.iso(d.recovered) if d.recovered is not None else "not by the window's end"
        bad = f"{d.bad:.0f}" if m.kind == "errors" else f"{d.bad:.0f} slower than {d_ms(m.edge)}"
        out.append(
            f"| {m.labels.get(ROUTE, '')} | {m.labels.get(TENANT, '')} | {m.signal} | "
            f"{times.iso(d.first)} | {back} | {d.events:.0f} | {bad} |"
        )
    tenants = sorted({m.labels.get(TENANT, "") for m in timeline.symptoms})
    routes = sorted({m.labels.get(ROUTE, "") for m in timeline.symptoms})
    out += [
        "",
        f"Requests and bad requests are summed over the intervals that left the band "
        f"({times.duration_text(timeline.step)} each), from `increase()` of "
        "`http_server_request_duration_seconds`.",
        f"Tenants affected: {', '.join(tenants)}. Routes affected: {', '.join(routes)}.",
    ]
    shown = [
        b
        for b in timeline.budgets
        if not b["tenant"]
        or b["tenant"] in tenants
        or (b["remaining_before"] is not None and b["remaining_before"] != b["remaining_after"])
    ]
    if shown:
        out += [
            "",
            "Error budget (of each objective's whole period; a tenant's own when broken down):",
            "",
            "| objective | tenant | left at the start | left at the end | spent in the window |",
            "|---|---|---|---|---|",
        ]
        for b in shown:
            before, after = b["remaining_before"], b["remaining_after"]
            first = f"{before * 100:.2f}%" if before is not None else "not recorded"
            spent = f"{(before - after) * 100:.2f} points" if before is not None else "unknown"
            out.append(
                f"| {b['slo']} | {b['tenant'] or '-'} | {first} | {after * 100:.2f}% | {spent} |"
            )
        out.append(f"\nFrom `{shown[0]['query']}` at the window's start and end.")
    return [*out, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def d_ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a table cell."""
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"


def _factors(timeline: Timeline) -> list[str]:
    out = ["## Contributing factors (as measured)", ""]
    symptom = timeline.first_symptom
    if symptom is None:
        return [*out, TODO, ""]
    start = symptom.departure.first
    for change in timeline.changes_before(start)[-3:]:
        out.append(
            f"- A change {times.duration_text(start - change.at)} before the first symptom: "
            f"{change.what} at {times.iso(change.at)} (`{change.evidence}`)."
        )
    where = sorted({m.where for m in timeline.symptoms})
    out.append(
        f"- The symptom was confined to {len(where)} route and tenant pair(s): "
        f"{'; '.join(where)}. No other route or tenant of the service left its band."
    )
    for movement in timeline.saturation:
        lag = movement.departure.first - start
        relation = f"{times.duration_text(lag)} {'after' if lag >= 0 else 'before'}"
        out.append(
            f"- {movement.signal} {movement.where} moved {relation} the first symptom: "
            f"{describe(movement)} (`{movement.query}`)."
        )
    if not timeline.saturation:
        out.append(
            "- No saturation or dependency signal (loop lag, pool waits, throttling, "
            "outbound latency) left its band."
        )
    out.append(f"- Why the change behaved so: {TODO}.")
    return [*out, ""]


def _detection(timeline: Timeline) -> list[str]:
    out = ["## Detection", ""]
    symptom, page = timeline.first_symptom, timeline.first_page
    if page is not None and page.firing is not None:
        owner = f" to {page.owner}" if page.owner else ""
        out.append(
            f"- What paged: {page.name} (SLOBurn) at {times.iso(page.firing)}{owner}; "
            f"runbook {page.runbook_url or 'none linked'}."
        )
        steps = [
            ("burn over the short window above the factor", page.burning),
            ("alert pending", page.pending),
            ("firing", page.firing),
        ]
        out.append("- Its sequence: " + "; ".join(f"{n} at {times.iso(t)}" for n, t in steps if t))
        if symptom is not None and timeline.detection_gap is not None:
            out.append(
                f"- How late: {times.duration_text(timeline.detection_gap)} after the first "
                f"symptom ({times.iso(symptom.departure.first)})."
            )
    else:
        out.append("- What paged: no page-severity SLOBurn alert fired in the window.")
    out += ["- What would have paged earlier:"] + [f"  - {line}" for line in _earlier(timeline)]
    return [*out, ""]


def _earlier(timeline: Timeline) -> list[str]:
    symptom, page = timeline.first_symptom, timeline.first_page
    lines: list[str] = []
    if symptom is None:
        return ["nothing measured departed: no earlier signal to page on."]
    tenant = symptom.labels.get(TENANT, "")
    if page is not None and tenant and not page.tenant:
        lines.append(
            f"the objective {page.slo} is not broken down by tenant: a per-tenant "
            f"objective would have judged tenant {tenant} alone."
        )
    if page is not None and page.hold and page.pending is not None:
        lines.append(
            f"the tier holds {times.duration_text(page.hold)} (`for:`) after its "
            f"condition held at {times.iso(page.pending)}."
        )
    if page is not None and page.burning is not None and page.firing is not None:
        lead = page.firing - page.burning
        if lead > 0:
            lines.append(
                f"its short window ({page.short_window}) alone crossed the factor "
                f"{times.duration_text(lead)} before the page."
            )
    if page is None:
        fastest = [t for t in timeline.tiers if t.threshold is not None]
        if fastest:
            tier = min(fastest, key=lambda t: t.threshold or 1.0)
            lines.append(
                f"no tier paged; the lowest threshold is {tier.name}'s error ratio of "
                f"{(tier.threshold or 0) * 100:.3g}%."
            )
        else:
            lines.append(
                "no SLO burn-rate rule covers this: an objective on "
                f"{symptom.where} would have (see the action items)."
            )
    return lines or ["the page came in the first interval measured: nothing earlier."]


def _mitigation(timeline: Timeline) -> list[str]:
    out = ["## Mitigation", ""]
    symptom = timeline.first_symptom
    if symptom is not None:
        d = symptom.departure
        if d.recovered is not None:
            out.append(
                f"- Recovery measured: {symptom.signal} {symptom.where} back within band "
                f"at {times.iso(d.recovered)}, {times.duration_text(d.recovered - d.first)} "
                "after the first symptom."
            )
            during = [c for c in timeline.changes if d.first <= c.at <= d.recovered]
            for change in during:
                out.append(
                    f"- Changed before the recovery: {change.what} at {times.iso(change.at)}."
                )
        else:
            out.append(
                f"- {symptom.signal} {symptom.where} was not back within band by "
                f"{times.iso(timeline.end)}."
            )
    for tier in timeline.tiers:
        if tier.resolved is not None:
            out.append(f"- {tier.name}: SLOBurn resolved at {times.iso(tier.resolved)}.")
    out.append(f"- What was done, by whom it was decided and when: {TODO}.")
    return [*out, ""]


def _look(timeline: Timeline) -> list[str]:
    out = ["## Where to look", ""]
    for e in timeline.exemplars[:5]:
        cid = f", correlation id `{e.correlation_id}`" if e.correlation_id else ""
        out.append(
            f"- {e.kind} trace `{e.trace_id}` at {times.iso(e.at)} ({e.route}, tenant "
            f"{e.tenant}, {e.seconds * 1000:.0f} ms{cid})"
        )
    if timeline.logs is not None:
        for request in timeline.logs.requests:
            events = [str(line.get("event", "")) for line in request.lines]
            out.append(
                f"- failed request `{request.correlation_id}` at {times.iso(request.at)}: "
                f"log events {', '.join(events)} ({request.source})"
            )
    if len(out) == 2:
        out.append("No exemplar or log line of a failed request in the window.")
    return [*out, ""]


def _actions(timeline: Timeline) -> list[str]:
    out = [
        "## Action items",
        "",
        "| # | action | guardrail obskit can enforce | owner | due |",
        "|---|---|---|---|---|",
    ]
    leading, deploy = _leading(timeline), _deploy_before(timeline)
    rows: list[tuple[str, str]] = []
    if leading is not None:
        judge = f"obskit canary judge --prometheus {timeline.prometheus}"
        if deploy is not None and deploy.facts.get("previous_version"):
            old = deploy.facts["previous_version"].split(", ")[0]
            baseline = '{service_version="' + old + '"}'
            canary = '{service_version="' + deploy.facts["version"] + '"}'
            judge += f" --baseline {shlex.quote(baseline)} --canary {shlex.quote(canary)}"
        else:
            judge += " --baseline SELECTOR --canary SELECTOR"
        judge += " --since 30m --by tenant_id"
        if leading in timeline.saturation:
            # The judge compares saturation always; it fails a canary on it only when asked.
            judge += " --saturation-gates"
        rows.append(
            (
                f"Gate rollouts on {leading.signal} for {leading.where}, which moved first "
                f"({times.iso(leading.departure.first)}).",
                f"a canary check: `{judge}`",
            )
        )
    symptom, page = timeline.first_symptom, timeline.first_page
    if symptom is not None:
        tenant, route = symptom.labels.get(TENANT, ""), symptom.labels.get(ROUTE, "")
        if page is not None and tenant and not page.tenant:
            guard = f"`by_tenant=True` on the objective {page.slo} (`obskit slo rules`)"
            rows.append((f"Page on one tenant's burn: tenant {tenant} was hurt alone.", guard))
        elif page is None:
            guard = (
                f"an objective `slo.HttpAvailability(routes=({route!r},))` with "
                "`by_tenant=True`, through `obskit slo rules`"
            )
            rows.append((f"Cover {route} with an objective that pages.", guard))
        elif page.hold:
            rows.append(
                (
                    f"Page sooner than {times.duration_text(timeline.detection_gap or 0)} "
                    "after the first symptom.",
                    f"a shorter `for:` on {page.name}, or a faster tier (`obskit slo rules`)",
                )
            )
        runbook = page.runbook_url if page is not None else "the objective's runbook"
        step = (
            f"first check what changed (`obskit incident timeline`), then {symptom.signal} "
            f"by route and tenant; roll back a deploy that precedes it"
        )
        rows.append(
            (
                f"Add to {runbook}: {step}.",
                "a mitigation in the objective's declaration "
                "(`mitigations=`), written by `obskit slo runbooks`",
            )
        )
    for number, (action, guard) in enumerate(rows, 1):
        out.append(f"| {number} | {_cell(action)} | {_cell(guard)} |  |  |")
    if not rows:
        out.append(f"| 1 | {TODO} |  |  |  |")
    return [*out, ""]


def draft(timeline: Timeline, title: str = "") -> str:
    """The postmortem draft as Markdown."""
    out = [
        f"# Postmortem (draft): {title or _title(timeline)}",
        "",
        f"Written by `obskit incident postmortem` from {timeline.prometheus} between "
        f"{times.iso(timeline.start)} and {times.iso(timeline.end)}. Each statement comes from a "
        "measured series, alert or log line; what cannot be measured is marked for the team. "
        "Blameless: the factors are conditions of the system, not people.",
        "",
        "## Summary",
        "",
        *(f"- {line}" for line in summary_lines(timeline)),
        "",
        *_impact(timeline),
        "## Timeline",
        "",
        "| time (UTC) | kind | what |",
        "|---|---|---|",
        *(f"| {times.iso(r.at)} | {r.kind} | {_cell(r.what)} |" for r in timeline.rows()),
        "",
        *_factors(timeline),
        *_detection(timeline),
        *_mitigation(timeline),
        *_look(timeline),
        *_actions(timeline),
    ]
    return "\n".join(out)
