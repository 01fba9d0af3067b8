"""``obskit slo alertmanager``: routes by owner and severity, and the inhibitions of the tiers.

The fragment has a ``route`` (one child route per owner and severity, to the receiver you
name, ``<owner>-<severity>`` by default), the ``receivers`` it names (integrations are yours to
fill in) and ``inhibit_rules``:

- a slower tier is muted while a faster tier of the same objective (and tenant) fires: one
  rule per long window, muting every longer one;
- a ticket is muted while a page of the same objective (and tenant, and signal) fires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from obskit._yaml import dump
from obskit.metrics import promql
from obskit.slo import rules, saturation
from obskit.slo.objectives import ObjectiveSet, SpecError

__all__ = ["config", "parse_receivers", "receiver_name", "render"]

SEVERITIES = ("page", "ticket")
# Alerts of one objective and tenant (or one saturation signal) are one notification.
GROUP_BY = ["alertname", "slo", "tenant_id", "signal"]
EQUAL = ["slo", "tenant_id", "signal"]
_ALERTS = f"{rules.ALERT}|{rules.ABSENT_ALERT}|{saturation.ALERT}"

Receivers = Mapping[tuple[str, str], str]


def parse_receivers(values: Sequence[str]) -> dict[tuple[str, str], str]:
    """``OWNER[:SEVERITY]=NAME`` options as {(owner, severity): receiver}."""
    out: dict[tuple[str, str], str] = {}
    for value in values:
        key, sep, name = value.partition("=")
        owner, _, severity = key.partition(":")
        if not sep or not owner or not name or severity not in ("", *SEVERITIES):
            raise SpecError(f"--receiver {value!r}: expected OWNER=NAME or OWNER:SEVERITY=NAME")
        for each in (severity,) if severity else SEVERITIES:
            out[(owner, each)] = name
    return out


def receiver_name(receivers: Receivers, owner: str, severity: str) -> str:
    """The receiver of an owner's alerts of one severity."""
    return receivers.get((owner, severity), f"{owner}-{severity}")


def _matcher(label: str, value: str, op: str = "=") -> str:
    return f"{label}{op}{promql.quote(value)}"


def _windows(sets: ObjectiveSet) -> list[int]:
    return sorted({t.long for o in sets.objectives for t in o.tiers})


def inhibit_rules(sets: ObjectiveSet) -> list[dict[str, Any]]:
    """Faster tiers mute slower ones; pages mute tickets (same objective, tenant, signal)."""
    out: list[dict[str, Any]] = []
    windows = _windows(sets)
    for k, window in enumerate(windows[:-1]):
        slower = "|".join(promql.duration(w) for w in windows[k + 1 :])
        out.append(
            {
                "source_matchers": [
                    _matcher("alertname", rules.ALERT),
                    _matcher("long_window", promql.duration(window)),
                ],
                "target_matchers": [
                    _matcher("alertname", rules.ALERT),
                    _matcher("long_window", slower, "=~"),
                ],
                "equal": EQUAL,
            }
        )
    out.append(
        {
            "source_matchers": [_matcher("alertname", _ALERTS, "=~"), _matcher("severity", "page")],
            "target_matchers": [
                _matcher("alertname", _ALERTS, "=~"),
                _matcher("severity", "ticket"),
            ],
            "equal": EQUAL,
        }
    )
    return out


def config(
    sets: ObjectiveSet, receivers: Receivers | None = None, default_receiver: str = "default"
) -> dict[str, Any]:
    """The Alertmanager configuration fragment (as data)."""
    receivers = receivers or {}
    owners = sorted(
        {o.owner for o in sets.objectives} | ({sets.owner} if sets.saturation else set())
    )
    routes = []
    names = [default_receiver]
    for owner in owners:
        for severity in SEVERITIES:
            name = receiver_name(receivers, owner, severity)
            routes.append(
                {
                    "receiver": name,
                    "matchers": [
                        _matcher("alertname", _ALERTS, "=~"),
                        _matcher("owner", owner),
                        _matcher("severity", severity),
                    ],
                    # A page wakes someone: sent fast, repeated hourly; a ticket can wait.
                    "group_wait": "30s" if severity == "page" else "5m",
                    "repeat_interval": "1h" if severity == "page" else "24h",
                }
            )
            if name not in names:
                names.append(name)
    return {
        "route": {"receiver": default_receiver, "group_by": GROUP_BY, "routes": routes},
        "receivers": [{"name": name} for name in names],
        "inhibit_rules": inhibit_rules(sets),
    }


def render(
    sets: ObjectiveSet, receivers: Receivers | None = None, default_receiver: str = "default"
) -> str:
    """The fragment as YAML text."""
    header = (
        "Alertmanager routes and inhibitions for SLO alerts, from `obskit slo alertmanager`.\n"
        "Merge into alertmanager.yml; give each receiver its integrations (PagerDuty, Slack...)."
    )
    return dump(config(sets, receivers, default_receiver), header=header)
