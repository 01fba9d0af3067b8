"""Objectives: an indicator, a target over a period, an owner, a runbook, the alert tiers.

An :class:`Objective` is validated when it is made: a bad one raises :class:`SpecError`
(a :class:`obskit.ConfigError`) naming the field and what is accepted, so ``obskit slo rules``
never writes rules from a declaration that cannot work.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from obskit._config import ConfigError
from obskit.slo import _signals
from obskit.slo.burn import DAY, DEFAULT_TIERS, Tier, parse_duration, parse_fraction, select_tiers
from obskit.slo.indicators import Events, Indicator, restrict

__all__ = ["Objective", "ObjectiveSet", "SpecError"]

_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Windows the rules can compute: the 5-minute rate itself, multiples of 5 minutes below a day
# (from 5-minute tiles), whole hours from a day up (from hourly tiles).
TILE = 300
HOUR_TILE = 3600


class SpecError(ConfigError):
    """An SLO declaration obskit cannot accept; the message names where and what is accepted."""


def check_window(seconds: int, what: str) -> None:
    """Raise ValueError unless the rules can compute a window of ``seconds``."""
    if seconds < DAY and seconds % TILE == 0:
        return
    if seconds >= DAY and seconds % HOUR_TILE == 0:
        return
    raise ValueError(
        f"{what} must be a multiple of 5m below 1d, or a whole number of hours from 1d up"
    )


def _period(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value * DAY  # a bare number is days
    elif isinstance(value, str):
        seconds = parse_duration(value)
    else:
        raise ValueError(f"period is a number of days or a duration like 30d, not {value!r}")
    if seconds % DAY or seconds < DAY:
        raise ValueError(f"period is a whole number of days (7d, 28d, 30d, 90d), not {value!r}")
    return seconds


def _tiers(value: object) -> tuple[Tier, ...]:
    if isinstance(value, str):
        return select_tiers([value])
    items = list(value) if isinstance(value, Iterable) else [value]
    if not items:
        raise ValueError("at least one alert tier (page, ticket, all, or Tier objects)")
    tiers: list[Tier] = []
    for item in items:
        chosen = select_tiers([item]) if isinstance(item, str) else (item,)
        for tier in chosen:
            if not isinstance(tier, Tier):
                raise ValueError(f"a tier is a name (page, ticket, page-1h...) or a Tier: {tier!r}")
            if tier not in tiers:
                tiers.append(tier)
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"tier names repeat: {names}")
    return tuple(tiers)


@dataclasses.dataclass(frozen=True)
class Objective:
    """One service level objective.

    ``target`` is the share of good events (``0.999``, ``"99.9%"``; read exactly, never as a
    float); ``period`` whole days (``"30d"``, ``28``); ``owner`` the team its alerts route to;
    ``by_tenant`` checks the objective for every tenant (the guarded ``tenant_id`` label) so one
    burning tenant pages even when the aggregate does not; ``tiers`` which burn-rate alerts to
    write (names ``page``, ``ticket``, ``page-1h``..., or :class:`~obskit.slo.burn.Tier`);
    ``min_events``: no burn alert unless the long window saw at least that many events;
    ``where``: label matchers added to every series (``{"job": "shop"}``); ``mitigations``:
    what the runbook offers to do first (roll back, turn a flag off, scale, degrade).
    """

    name: str
    indicator: Indicator
    target: Any
    owner: str
    period: Any = "30d"
    service: str = ""
    description: str = ""
    runbook: str = ""
    by_tenant: bool = False
    tiers: Any = DEFAULT_TIERS
    min_events: int = 0
    where: Mapping[str, str] = dataclasses.field(default_factory=dict)
    mitigations: tuple[str, ...] = ()
    absent_for: Any = "10m"

    def __post_init__(self) -> None:
        try:
            self._validate()
        except SpecError:
            raise
        except ValueError as exc:
            raise SpecError(f"objective {self.name!r}: {exc}") from None

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                "name is lower-case letters, digits and '-', at most 63, starting and ending "
                "with a letter or digit (RFC 1123: it becomes the slo label and a file name)"
            )
        if not isinstance(self.indicator, Indicator):
            raise ValueError(f"indicator is an obskit.slo indicator, not {self.indicator!r}")
        target = parse_fraction(self.target)
        if not 0 < target < 1:
            raise ValueError(f"target is a share in (0, 1) such as 0.999 or '99.9%', not {target}")
        object.__setattr__(self, "target", target)
        if not isinstance(self.owner, str) or not _LABEL.fullmatch(self.owner.replace("-", "_")):
            raise ValueError("owner is the team the alerts route to: letters, digits, '-', '_'")
        object.__setattr__(self, "period", _period(self.period))
        object.__setattr__(self, "tiers", _tiers(self.tiers))
        for tier in self.tiers:
            check_window(tier.long, f"tier {tier.name}: the long window")
            check_window(tier.short, f"tier {tier.name}: the short window")
            if tier.long > self.period:
                raise ValueError(f"tier {tier.name}: its long window is longer than the period")
        if isinstance(self.min_events, bool) or not isinstance(self.min_events, int):
            raise ValueError(f"min_events is a whole number, not {self.min_events!r}")
        if self.min_events < 0:
            raise ValueError("min_events is not negative")
        if not isinstance(self.by_tenant, bool):
            raise ValueError(f"by_tenant is true or false, not {self.by_tenant!r}")
        if self.by_tenant and not self.indicator.has_label(_signals.TENANT_LABEL):
            raise ValueError(
                f"by_tenant: the indicator's series have no {_signals.TENANT_LABEL} label "
                f"(they carry {', '.join(self.indicator.labels or ())})"
            )
        where = dict(self.where)
        for key, value in where.items():
            if not isinstance(key, str) or not _LABEL.fullmatch(key) or not isinstance(value, str):
                raise ValueError(f"where maps label names to values, not {key!r}: {value!r}")
        object.__setattr__(self, "where", where)
        given: Any = self.mitigations
        mitigations = (given,) if isinstance(given, str) else tuple(given)
        if not all(isinstance(m, str) and m.strip() for m in mitigations):
            raise ValueError("mitigations are short sentences (roll back, turn flag X off, ...)")
        object.__setattr__(self, "mitigations", tuple(mitigations))
        absent = self.absent_for
        object.__setattr__(
            self, "absent_for", parse_duration(absent) if isinstance(absent, str) else int(absent)
        )
        for text in ("service", "description", "runbook"):
            if not isinstance(getattr(self, text), str):
                raise ValueError(f"{text} is text")

    @property
    def budget(self) -> Fraction:
        """The error budget: the share of events allowed to be bad (1 - target)."""
        return 1 - Fraction(self.target)

    @property
    def group_by(self) -> tuple[str, ...]:
        """The labels the objective is checked by: the tenant when broken down."""
        return (_signals.TENANT_LABEL,) if self.by_tenant else ()

    def total(self) -> Events:
        """Total events, restricted by ``where``."""
        return restrict(self.indicator.total(), self.where)

    def bad(self) -> Events:
        """Bad events, restricted by ``where``."""
        return restrict(self.indicator.bad(), self.where)

    def windows(self) -> tuple[int, ...]:
        """Every window an alert of this objective reads, shortest first."""
        return tuple(sorted({w for t in self.tiers for w in (t.long, t.short)}))


@dataclasses.dataclass(frozen=True)
class ObjectiveSet:
    """The objectives of one service, and where their runbooks and dashboard live.

    ``runbook_base``: the URL the runbooks are published under (``<base>/<slo>.md`` unless an
    objective names its own ``runbook``); ``dashboard_url``: the Grafana base URL; ``owner``:
    who gets the resource-saturation alerts (default: the objectives' owner, or the first's);
    ``saturation``: write those alerts at all.
    """

    objectives: tuple[Objective, ...]
    service: str = ""
    runbook_base: str = ""
    dashboard_url: str = ""
    owner: str = ""
    saturation: bool = True

    def __post_init__(self) -> None:
        objectives = tuple(self.objectives)
        if not objectives:
            raise SpecError("no objective declared")
        for objective in objectives:
            if not isinstance(objective, Objective):
                raise SpecError(f"not an obskit.slo.Objective: {objective!r}")
        names = [o.name for o in objectives]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SpecError(f"objective names repeat: {', '.join(repeated)}")
        object.__setattr__(self, "objectives", objectives)
        if not self.service:
            services = sorted({o.service for o in objectives if o.service})
            object.__setattr__(self, "service", services[0] if len(services) == 1 else "")
        if not self.owner:
            object.__setattr__(self, "owner", objectives[0].owner)
        for text in ("service", "runbook_base", "dashboard_url", "owner"):
            if not isinstance(getattr(self, text), str):
                raise SpecError(f"{text} is text, not {getattr(self, text)!r}")

    @property
    def common_where(self) -> dict[str, str]:
        """The matchers every objective shares (the service's own series, e.g. its job)."""
        first, *rest = (o.where for o in self.objectives)
        return {k: v for k, v in first.items() if all(w.get(k) == v for w in rest)}

    @classmethod
    def of(cls, value: object, **options: Any) -> ObjectiveSet:
        """An ObjectiveSet from one Objective, a sequence of them, or an ObjectiveSet."""
        if isinstance(value, ObjectiveSet):
            return dataclasses.replace(value, **options) if options else value
        if isinstance(value, Objective):
            return cls((value,), **options)
        if isinstance(value, Sequence) and not isinstance(value, str):
            return cls(tuple(value), **options)
        raise SpecError(f"expected Objective(s) or an ObjectiveSet, not {type(value).__name__}")

    def runbook_url(self, objective: Objective) -> str:
        """The runbook an objective's alerts link to."""
        if objective.runbook:
            return objective.runbook
        base = self.runbook_base or "runbooks"
        return f"{base.rstrip('/')}/{objective.name}.md"
