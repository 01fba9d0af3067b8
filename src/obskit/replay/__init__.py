"""Prometheus without a Prometheus: recorded scrapes, PromQL over them, rule files evaluated.

``obskit demo`` records every scrape of its services (``scrapes.jsonl`` and the expositions it
names). :class:`~obskit.replay.store.Store` reads them back as Prometheus would have stored them
(``job`` and ``instance`` labels, staleness when a series or a target disappears);
:func:`~obskit.replay.promql.evaluate` answers the PromQL that obskit's own commands write
(selectors, ``rate``/``increase``/``*_over_time``, ``histogram_quantile``, aggregations, binary
operators with vector matching, ``and``/``or``/``unless``, ``absent``);
:func:`~obskit.replay.rules.evaluate_rules` runs a rule file (recording rules, alerts with
``for``, ``ALERTS`` and ``ALERTS_FOR_STATE``) at every scrape; and
:class:`~obskit.replay.client.RecordedPrometheus` answers the few API calls
``obskit incident`` makes. So the demo's report is the same on a machine with no Prometheus.

It is not a Prometheus: no subqueries, ``offset``, ``@`` or ``group_left``; anything else is
refused with :class:`~obskit.replay.promql.QueryError` naming what is not supported.
"""

from __future__ import annotations
