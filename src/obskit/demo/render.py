"""The demo report as text: the incident loop, step by step; styled only on a terminal."""

from __future__ import annotations

from typing import Any

from obskit._terminal import Bar, Style, table, waterfall
from obskit.demo.figures import count, evidence, ms, percent, sig

__all__ = ["render"]

_SHORT = {"db_client_connection_pool_name": "pool", "http_route": "route", "tenant_id": "tenant"}
_RED_HEADERS = ("", "req", "req/s", "5xx", "err %", "p50 ms", "p95 ms", "p99 ms")
_RED_RIGHT = (False, True, True, True, True, True, True, True)


def _red_table(rows: list[dict[str, Any]]) -> str:
    return table(
        _RED_HEADERS,
        [
            (
                row["key"],
                count(row["requests"]),
                sig(row["rate_per_s"], 2),
                count(row["errors"]),
                percent(row["error_ratio"]),
                ms(row["p50_s"]),
                ms(row["p95_s"]),
                ms(row["p99_s"]),
            )
            for row in rows
        ],
        right=_RED_RIGHT,
    )


def _use_value(row: dict[str, Any]) -> str:
    if row["unit"] == "share":
        return percent(row["value"])
    if row["unit"] == "seconds":
        return f"{ms(row['value'])} ms"
    return count(row["value"])


def _value(check: dict[str, Any], key: str) -> str:
    value = check[key]
    if value is None:
        return "-"
    if "latency" in check["metric"] or check["metric"].endswith("p99"):
        return f"{ms(value)} ms"
    return percent(value)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _log_line(line: dict[str, Any], style: Style) -> list[str]:
    keys = ("timestamp", "service", "level", "logger", "event")
    head = " ".join(str(line.get(k, "")) for k in keys)
    skip = (*keys, "service_version", "environment", "exception", "correlation_id", "pid")
    rest = " ".join(f"{k}={v}" for k, v in line.items() if k not in skip)
    lines = [f"  {head} {style.dim(rest)}"]
    for exc in line.get("exception") or []:
        lines.append(style.bad(f"      exception: {exc.get('exc_type')}: {exc.get('exc_value')}"))
    return lines


def _trace(view: dict[str, Any] | None, title: str, style: Style) -> list[str]:
    if not view:
        return [style.heading(title), "  (no such trace kept in this run)"]
    wait = view["pool_wait_s"]
    head = (
        f"{title}: {view['trace_id']} on {view['instance']} ({view['route']} "
        f"tenant={view['tenant']}, {ms(view['duration_s'])} ms, pool wait "
        f"{ms(wait) + ' ms' if wait is not None else '-'})"
    )
    return [style.heading(head), waterfall([Bar(**bar) for bar in view["bars"]], style=style)]


def _span(seconds: float) -> str:
    """A rule's window as written (``5m``, ``1h``, ``6h``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def _burn(after: dict[str, Any]) -> list[str]:
    """The objective's alerts and per-tenant burn, as its rules evaluated them."""
    goal = after.get("objective") or {}
    scale = after.get("scale") or 1
    parts = [
        f"  the per-tenant objective {goal.get('name', '-')} ({percent(goal.get('target'))} of "
        f"checkouts within {goal.get('threshold_s', 0):g} s, owner {goal.get('owner', '-')}): "
        f"its rules as `obskit slo rules` writes them ({after.get('rules', '-')}),",
        f"  evaluated at every scrape, the clock scaled {scale:g}x (1 s of the run counts as "
        f"{scale / 60:g} min: [5m] reads {300 / scale:g} s, for: 2m {120 / scale:g} s):",
    ]
    alerts = after.get("alerts") or []
    if alerts:
        parts.append(
            table(
                ("alert", "tier", "tenant", "pending t", "firing t", "resolved t", "peak burn"),
                [
                    (
                        f"SLOBurn {a['slo']}",
                        a["tier"],
                        a["tenant"] or "all",
                        f"{sig(a['pending_t'])} s",
                        f"{sig(a['firing_t'])} s" if a["firing_t"] is not None else "-",
                        f"{sig(a['resolved_t'])} s" if a["resolved_t"] is not None else "-",
                        f"{sig(a['max_burn'])}x",
                    )
                    for a in alerts
                ],
                right=(False, False, False, True, True, True, True),
            )
        )
    page = after.get("page") or {}
    tiers = ", ".join(
        f"{t['factor']:.3g}x over {_span(t['long_s'])} and {_span(t['short_s'])} "
        f"for {_span(t['for_s'])}"
        for t in page.get("tiers", [])
    )
    pages = [a for a in alerts if a["severity"] == "page"]
    fired = [a for a in pages if a["firing_t"] is not None]
    if fired:
        first = min(fired, key=lambda a: a["firing_t"])
        said = f"paged at t={sig(first['firing_t'])} s, for tenant {first['tenant'] or 'all'}"
    elif pages:
        first = pages[0]
        said = (
            f"pending from t={sig(first['pending_t'])} s for tenant {first['tenant'] or 'all'}: "
            f"it pages once pending longer than its for:"
        )
    else:
        said = "not active in this run: it pages once both windows of a tier pass its factor"
    parts.append(
        f"  the page, {page.get('alert', '-')} (tiers {tiers}): {said}; it pages "
        f"{page.get('owner', '-')}, runbook {page.get('runbook_url', '-')}"
    )
    burns = [row for row in after.get("burn_short") or [] if row["peak"] > 0]
    calm = len(after.get("burn_short") or []) - len(burns)
    if burns:
        parts.append(
            "  burn over the short window (5m), per tenant: its peak, then after the rollback"
            + (f" ({calm} other tenants: none)" if calm else "")
        )
        parts.append(
            table(
                ("tenant", "peak", "at t", "at the rollback", "at the end"),
                [
                    (
                        row["tenant"],
                        f"{sig(row['peak'])}x",
                        f"{sig(row['peak_t'])} s",
                        f"{sig(row['at_rollback'])}x" if row["at_rollback"] is not None else "-",
                        f"{sig(row['end'])}x",
                    )
                    for row in burns
                ],
                right=(False, True, True, True, True),
            )
        )
    return parts


def render(figures: dict[str, Any], style: Style) -> str:
    """The report as text."""
    traffic, story, judge = figures["traffic"], figures["story"], figures["judge"]
    tenant = story["tenant"]
    deployed, rolled = story["deployed_t"], story["rolled_back_t"]
    steady_s = sig(figures["steady"]["seconds"])
    parts = [
        style.heading("obskit demo: a canary raises one tenant's p99, errors stay flat"),
        f"  {traffic['requests']} requests in {sig(traffic['elapsed_s'])} s "
        f"({sig(traffic['rate_per_s'], 2)}/s offered) from 5 tenants; statuses "
        + ", ".join(f"{k}: {v}" for k, v in traffic["statuses"].items())
        + "; by instance: "
        + ", ".join(f"{k} {v}" for k, v in traffic["by_instance"].items())
        + f"; request ids echoed: {traffic['ids_echoed']}/{traffic['requests']}",
        style.heading(f"1. Steady state: v1 on shop-1 and shop-2 (first {steady_s} s)"),
        "  RED per route:",
        _red_table(figures["steady"]["red_by_route"]),
        "  RED per tenant (globex's slow dependency is old news: both versions have it):",
        _red_table(figures["steady"]["red_by_tenant"]),
        "  the dependency, inventory, per tenant (whole run):",
        _red_table(figures["dependency_by_tenant"]),
        "  USE of shop-1:",
        table(
            ("resource", "value"),
            [(row["resource"], _use_value(row)) for row in figures["use"]],
            right=(False, True),
        )
        if figures["use"]
        else "  (no USE collectors exposed)",
    ]
    marker = story.get("deploy_marker") or {}
    parts += [
        style.heading("2. A change: v2 deployed as a canary"),
        f"  t={sig(deployed) if deployed is not None else '-'} s: shop-canary runs "
        f"{story['canary_version']} beside v1 and takes a third of the traffic; deploy marker "
        f"{marker.get('deployment.id', '(missing)')} ({marker.get('timestamp', '-')})",
        f"  what v2 changed: {tenant}'s checkouts (several orders at once, each on a connection "
        f"held {story['pool_hold_ms']} ms) use a pool of {story['canary_pool']} connection(s); "
        f"v1's has {story['baseline_pool']}",
    ]
    looks = judge["looks"]
    sequence = []
    for phase in ("steady", "canary", "rollback"):
        verdicts = [look["verdict"] for look in looks if look["phase"] == phase]
        runs: list[tuple[str, int]] = []
        for verdict in verdicts:
            if runs and runs[-1][0] == verdict:
                runs[-1] = (verdict, runs[-1][1] + 1)
            else:
                runs.append((verdict, 1))
        shown = " -> ".join(f"{v} x{n}" for v, n in runs) or "(no look)"
        sequence.append(f"  {phase:<9} {shown}")
    first_fail = judge["first_fail"]
    parts += [
        style.heading("3. Detect: the canary judge, asked every interval"),
        "  verdicts per look (A/A before the deploy and after the rollback):",
        *sequence,
    ]
    if first_fail:
        parts.append(
            f"  FAIL at t={sig(first_fail['t'])} s, look {first_fail['look']} of the canary; "
            f"tenant named: {', '.join(figures['tenant_named']) or 'none'}"
        )
    rows = [
        (
            "gate" if c["role"] == "gate" else ("moved" if decided else "moving"),
            c["metric"],
            ", ".join(f"{_SHORT.get(k, k)}={v}" for k, v in c["segment"].items()) or "all",
            _value(c, "baseline"),
            _value(c, "canary"),
            evidence(c["e_value"]),
            evidence(c["threshold"]),
        )
        for c, decided in zip(judge["failed_checks"], judge["decided"], strict=True)
    ]
    if rows:
        parts.append(
            table(
                ("", "check", "segment", "v1", "v2", "evidence e now", "needed"),
                rows,
                right=(False, False, False, True, True, True, True),
            )
        )
        parts.append(
            "  (a check fails when its evidence reaches the value needed and stays failed; its e "
            "may fall back later)"
        )
    after = figures.get("aftermath") or {}
    parts += _burn(after)
    paths = figures["paths"]
    parts += _trace(
        paths.get("canary"), f"4. Find the path: the slowest kept {tenant} checkout on v2", style
    )
    parts += _trace(paths.get("stable"), f"   beside a typical kept {tenant} checkout on v1", style)
    slow = figures["slow_request"]
    parts.append(style.heading(f"   the log lines of that v2 request ({slow['request_id']})"))
    for line in slow["log_lines"]:
        parts += _log_line(line, style)
    parts.append(style.heading("   what the tail sampler kept, and why"))
    for sampling in figures["sampling"]:
        kept = ", ".join(f"{rule}: {n}" for rule, n in sampling["kept_by_rule"].items())
        parts.append(
            f"  {sampling['service']}: {sampling['traces_decided']} traces decided, "
            f"{sampling['traces_kept_in_sink']} kept ({kept or 'none'})"
        )
    errors = figures["error_traces"]
    check = "every one" if errors["traces_kept"] == errors["responses_5xx"] else "NOT all"
    parts.append(
        f"  5xx responses: {errors['responses_5xx']}; their traces kept: {errors['traces_kept']} "
        f"({check}) — errors are flat: the same 1 in 50 checkouts fail on both versions"
    )
    failed = figures["failed_request"]
    parts.append(style.heading(f"   every log line of failed request {failed['request_id']}"))
    for line in failed["log_lines"]:
        parts += _log_line(line, style)
    parts += [
        style.heading("5. Mitigate: the canary is rolled back"),
        f"  t={sig(rolled) if rolled is not None else '-'} s: v2 stopped, its share back to v1; "
        f"the judge's last verdict after the rollback: {judge['final'].get('rollback', '-')}",
        f"  {tenant}'s checkout latency per phase (from the recorded scrapes):",
        table(
            ("phase", "version", "checkouts", "p50 ms", "p99 ms"),
            [
                (
                    row["phase"],
                    row["version"],
                    count(row["requests"]),
                    ms(row.get("p50_s")),
                    ms(row["p99_s"]),
                )
                for row in figures["tenant_p99"]
            ],
            right=(False, False, True, True, True),
        ),
        style.heading("6. Guardrail: the action items the data suggests"),
    ]
    timeline = after.get("timeline")
    if timeline:
        parts.append(
            f"  the incident timeline (`obskit incident timeline`, read from the recording, "
            f"{sig(timeline['step_s'])} s intervals):"
        )
        parts.append(
            table(
                ("t", "kind", "what"),
                [
                    (f"{sig(row['t'])} s", row["kind"], _clip(row["what"], 96))
                    for row in timeline["rows"]
                ],
                right=(True, False, False),
            )
        )
        parts.append(f"  postmortem draft: {timeline['postmortem']}; its action items:")
        for item in timeline["action_items"]:
            parts.append(f"  - {_clip(item, 150)}")
    parts.append("  and from the judge, the resource that moved with the failure:")
    for item in figures["guardrail"] or [{"action": "(no cause moved with the failure)"}]:
        parts.append(f"  - {item['action']}")
        if item.get("command"):
            parts.append(f"    {style.dim(item['command'])}")
    artifacts = figures["artifacts"]
    parts.append(style.heading("Artifacts (every figure above comes from these)"))
    parts.append(
        table(
            ("what", "where"),
            [
                ("directory", artifacts["directory"]),
                ("requests sent", artifacts["requests"]),
                ("metrics snapshots (index)", artifacts["scrapes"]),
                ("judge looks", artifacts["judge"]),
                ("deploy marker", artifacts["deploys"]),
                *[(f"kept spans ({k})", v) for k, v in artifacts["kept_spans"].items()],
                *[(f"logs ({k})", v) for k, v in artifacts["logs"].items()],
                ("this report as JSON", artifacts["report"]),
            ],
        )
    )
    return "\n".join(parts)
