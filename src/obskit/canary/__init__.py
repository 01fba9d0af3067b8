"""The canary judge: compare a canary with its baseline, per route and per tenant, anytime-valid.

``obskit canary judge|watch|serve`` on the command line; :func:`judge` and :func:`watch` here.
Nothing in this package runs inside a service's requests, and ``import obskit`` imports none of
it. See ``docs/canary.md``.
"""

from __future__ import annotations

from obskit.canary.api import judge, parse_duration, watch
from obskit.canary.report import Check, Report
from obskit.canary.sources import SourceError

__all__ = ["Check", "Report", "SourceError", "judge", "parse_duration", "watch"]
