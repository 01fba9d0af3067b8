"""Burn-rate arithmetic: alert tiers, their factors, and thresholds written as exact decimals.

A tier pages (or files a ticket) when the objective spends ``budget_share`` of its error budget
within ``long`` seconds, and is still spending it over the last ``short`` seconds. Its burn
factor is ``budget_share x period / long``: for a 30-day period the four tiers of the SRE
workbook give exactly 14.4, 6, 3 and 1; for 28 days 13.44, 5.6, 2.8 and 0.9333….

All of it is computed with :class:`fractions.Fraction` and written as :class:`decimal.Decimal`:
a rule file says ``0.001`` and ``14.4``, never ``0.0009999999999999432``. A factor whose decimal
expansion does not end (28 days: 14/15) is rounded to :data:`SIGNIFICANT_DIGITS` digits, more
than a float holds.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

from obskit._times import parse_duration
from obskit.metrics.promql import duration

__all__ = [
    "DEFAULT_TIERS",
    "PAGE_TIERS",
    "SIGNIFICANT_DIGITS",
    "TICKET_TIERS",
    "Severity",
    "Tier",
    "exact",
    "parse_duration",
    "parse_fraction",
    "select_tiers",
    "text",
]

Severity = Literal["page", "ticket"]
SIGNIFICANT_DIGITS = 18
DAY = 86400


def parse_fraction(value: object) -> Fraction:
    """A number given as text (``"99.9%"``, ``"0.999"``), int, Decimal or float, exactly.

    A float is read through its shortest repr (``0.999`` is 999/1000, not the binary value).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, decimal.Decimal)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(decimal.Decimal(repr(value)))
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = Fraction(decimal.Decimal(text.removesuffix("%").strip()))
        except (decimal.InvalidOperation, ValueError):
            raise ValueError(f"not a number: {value!r}") from None
        return number / 100 if percent else number
    raise ValueError(f"not a number: {value!r}")


def exact(value: Fraction) -> decimal.Decimal:
    """``value`` as a Decimal: every digit when its expansion ends, else rounded to
    :data:`SIGNIFICANT_DIGITS` significant digits. Trailing zeros are dropped."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    context = decimal.Context(prec=SIGNIFICANT_DIGITS if denominator != 1 else 1000)
    quotient = context.divide(decimal.Decimal(value.numerator), decimal.Decimal(value.denominator))
    return quotient.normalize(context)


def text(value: Fraction) -> str:
    """``value`` as PromQL and YAML write it: :func:`exact`, in fixed-point notation."""
    return format(exact(value), "f")


@dataclasses.dataclass(frozen=True)
class Tier:
    """One multiwindow burn-rate alert: ``budget_share`` of the budget spent in ``long``
    seconds, still burning over ``short`` seconds, for ``hold`` seconds (the rule's ``for``)."""

    name: str
    severity: Severity
    budget_share: Fraction
    long: int
    short: int
    hold: int = 0

    def __post_init__(self) -> None:
        if self.severity not in ("page", "ticket"):
            raise ValueError(f"tier {self.name}: severity is page or ticket, not {self.severity!r}")
        share = parse_fraction(self.budget_share)
        if not 0 < share <= 1:
            raise ValueError(f"tier {self.name}: budget_share is in (0, 1], not {share}")
        object.__setattr__(self, "budget_share", share)
        if not 0 < self.short < self.long:
            raise ValueError(f"tier {self.name}: the short window must be shorter than the long")
        if self.hold < 0:
            raise ValueError(f"tier {self.name}: for is not negative")

    @classmethod
    def of(
        cls,
        name: str,
        severity: Severity,
        budget_share: object,
        long: str,
        short: str,
        hold: str | None = None,
    ) -> Tier:
        """A tier from text: ``Tier.of("page-1h", "page", "2%", "1h", "5m", "2m")``."""
        return cls(
            name,
            severity,
            parse_fraction(budget_share),
            parse_duration(long),
            parse_duration(short),
            parse_duration(hold) if hold else 0,
        )

    @property
    def long_window(self) -> str:
        """The long window as a PromQL duration (``1h``): the ``long_window`` label."""
        return duration(self.long)

    @property
    def short_window(self) -> str:
        """The short window as a PromQL duration (``5m``): the ``short_window`` label."""
        return duration(self.short)

    def factor(self, period: int) -> Fraction:
        """Burn factor over a period of ``period`` seconds: share x period / long window."""
        return self.budget_share * period / self.long

    def threshold(self, period: int, budget: Fraction) -> Fraction:
        """The error ratio above which the tier fires: factor x error budget."""
        return self.factor(period) * budget


# The SRE workbook's tiers (2% in 1h, 5% in 6h page; 10% in 1d, 10% in 3d ticket), held for
# Pyrra's durations so that one evaluation's blip never pages.
PAGE_TIERS: tuple[Tier, ...] = (
    Tier.of("page-1h", "page", "0.02", "1h", "5m", "2m"),
    Tier.of("page-6h", "page", "0.05", "6h", "30m", "15m"),
)
TICKET_TIERS: tuple[Tier, ...] = (
    Tier.of("ticket-1d", "ticket", "0.1", "1d", "2h", "1h"),
    Tier.of("ticket-3d", "ticket", "0.1", "3d", "6h", "3h"),
)
DEFAULT_TIERS: tuple[Tier, ...] = PAGE_TIERS + TICKET_TIERS


def select_tiers(names: Sequence[str]) -> tuple[Tier, ...]:
    """Default tiers by name (``page-1h``) or severity (``page``, ``ticket``), or ``all``."""
    chosen: list[Tier] = []
    for name in names:
        if name == "all":
            matches = list(DEFAULT_TIERS)
        else:
            matches = [t for t in DEFAULT_TIERS if name in (t.name, t.severity)]
        if not matches:
            known = ", ".join(["all", "page", "ticket", *(t.name for t in DEFAULT_TIERS)])
            raise ValueError(f"unknown tier {name!r} (accepted: {known})")
        chosen.extend(t for t in matches if t not in chosen)
    return tuple(chosen)
