"""A strict reader of OpenSLO v1 (``apiVersion: openslo/v1``) for Prometheus-backed SLOs.

Read: ``SLO`` (``indicator`` inline or ``indicatorRef``; one rolling ``timeWindow``;
``budgetingMethod: Occurrences``; one objective with ``target`` or ``targetPercent``;
``alertPolicies`` inline or by ``alertPolicyRef``), ``SLI`` (``ratioMetric`` with ``counter:
true``, ``good`` or ``bad``, and ``total``; ``thresholdMetric`` on a histogram for latency, the
objective's ``op: lte``/``lt`` and ``value`` giving the threshold), ``DataSource`` (type
Prometheus), ``AlertPolicy``/``AlertCondition`` (``kind: burnrate``: one multiwindow tier each;
``threshold`` is the burn factor, ``lookbackWindow`` the long window, ``alertAfter`` its ``for``),
``AlertNotificationTarget`` and ``Service``. Each query is a series selector (``metric{...}``);
obskit applies ``rate()`` over its windows.

What OpenSLO leaves to implementations comes from annotations ``obskit.dev/<key>``: ``owner``
(else the label ``owner`` or ``team``), ``runbook``, ``by-tenant``, ``min-events``,
``mitigations`` (one per line), and on an AlertCondition ``short-window`` (default: a twelfth of
the lookback window, the SRE workbook's ratio).

Anything else — calendar windows, Timeslices, composite objectives, ``raw`` ratios,
``counter: false`` — is refused with an error naming the file, document, field and what is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from obskit.metrics import promql
from obskit.slo._yamlread import At, Document, guarded
from obskit.slo.burn import Tier, parse_duration
from obskit.slo.indicators import Counters, Indicator, Latency
from obskit.slo.objectives import Objective, ObjectiveSet, SpecError

__all__ = ["API_VERSION", "KINDS", "parse"]

API_VERSION = "openslo/v1"
KINDS = ("SLO", "SLI", "Service", "DataSource", "AlertPolicy", "AlertCondition",
         "AlertNotificationTarget")  # fmt: skip
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"[1-9][0-9]*[mhdwMQY]")
_ANNOTATIONS = ("owner", "runbook", "by-tenant", "min-events", "mitigations", "short-window")
_PREFIX = "obskit.dev/"
MAX_DESCRIPTION = 1050


class _Object:
    """One OpenSLO object: kind, metadata, spec."""

    def __init__(self, at: At, fields: dict[str, At]) -> None:
        self.at = at
        self.kind = fields["kind"].value if "kind" in fields else ""
        meta = fields["metadata"].fields(("name",), ("displayName", "labels", "annotations"))
        self.name = meta["name"].text()
        if not _NAME.fullmatch(self.name):
            raise meta["name"].error(
                "an RFC 1123 label: at most 63 lower-case letters, digits and '-', starting and "
                "ending with a letter or digit"
            )
        if "displayName" in meta:
            meta["displayName"].text()
        self.labels = _labels(meta["labels"]) if "labels" in meta else {}
        self.annotations = _annotations(meta["annotations"]) if "annotations" in meta else {}
        self.spec = fields["spec"]

    def obskit(self, key: str) -> str | None:
        return self.annotations.get(_PREFIX + key)


def _labels(at: At) -> dict[str, tuple[str, ...]]:
    if not isinstance(at.value, dict):
        raise at.error("labels map names to a string or a list of strings")
    return {k: at.child(k, v).texts() for k, v in at.value.items()}


def _annotations(at: At) -> dict[str, str]:
    out = at.mapping_of_text()
    for key in out:
        if key.startswith(_PREFIX) and key[len(_PREFIX) :] not in _ANNOTATIONS:
            accepted = ", ".join(_PREFIX + k for k in _ANNOTATIONS)
            raise at.child(key, None).error(f"unknown obskit annotation (accepted: {accepted})")
    return out


def _description(spec: dict[str, At]) -> str:
    if "description" not in spec:
        return ""
    text = spec["description"].text()
    if len(text) > MAX_DESCRIPTION:
        raise spec["description"].error(f"at most {MAX_DESCRIPTION} characters")
    return text


def _object(at: At, kind: str | None = None) -> _Object:
    required = ("apiVersion", "kind", "metadata", "spec") if kind is None else ("metadata", "spec")
    fields = at.fields(required, ("apiVersion", "kind") if kind is not None else ())
    if "apiVersion" in fields:
        fields["apiVersion"].text(allowed=(API_VERSION,))
    if "kind" in fields:
        fields["kind"].text(allowed=KINDS if kind is None else (kind,))
    obj = _Object(at, fields)
    if kind is not None:
        obj.kind = kind
    return obj


class _File:
    """Every object of one file, by kind and name, for references."""

    def __init__(self, docs: Sequence[Document]) -> None:
        self.objects: dict[tuple[str, str], _Object] = {}
        for doc in docs:
            root = doc.root()
            items = root.items() if isinstance(root.value, list) else [root]
            for item in items:
                obj = _object(item)
                key = (obj.kind, obj.name)
                if key in self.objects:
                    raise obj.at.error(f"a second {obj.kind} named {obj.name!r}")
                self.objects[key] = obj

    def ref(self, at: At, kind: str) -> _Object:
        name = at.text()
        found = self.objects.get((kind, name))
        if found is None:
            known = sorted(n for k, n in self.objects if k == kind)
            raise at.error(f"no {kind} named {name!r} in this file (there: {known or 'none'})")
        return found


def _query(at: At, file: _File) -> promql.Selector:
    source = at.fields(("metricSource",))["metricSource"]
    fields = source.fields(("spec",), ("metricSourceRef", "type"))
    kind = fields["type"].text() if "type" in fields else None
    if "metricSourceRef" in fields:
        data = file.ref(fields["metricSourceRef"], "DataSource")
        data_fields = data.spec.fields(("type",), ("description", "connectionDetails"))
        kind = kind or data_fields["type"].text()
    if kind is None:
        raise source.error("type (Prometheus) or a metricSourceRef to a Prometheus DataSource")
    if kind.lower() != "prometheus":
        raise source.error(
            f"obskit writes Prometheus rules: the source type is Prometheus, not {kind}"
        )
    query = fields["spec"].fields(("query",))["query"]
    return guarded(query, lambda: promql.parse_selector(query.text()))


def _indicator(at: At, file: _File, objective: dict[str, At]) -> Indicator:
    spec = at.fields((), ("description", "ratioMetric", "thresholdMetric"))
    _description(spec)
    if ("ratioMetric" in spec) == ("thresholdMetric" in spec):
        raise at.error("exactly one of ratioMetric or thresholdMetric")
    if "ratioMetric" in spec:
        ratio = spec["ratioMetric"]
        fields = ratio.fields(("counter", "total"), ("good", "bad", "raw", "rawType"))
        if "raw" in fields or "rawType" in fields:
            raise ratio.error("raw ratios are not read: a precomputed ratio cannot be summed over "
                              "a window by volume; give good or bad, and total")  # fmt: skip
        if not fields["counter"].flag():
            raise fields["counter"].error("obskit reads counters (counter: true) with rate()")
        if ("good" in fields) == ("bad" in fields):
            raise ratio.error("exactly one of good or bad, with total")
        total = _query(fields["total"], file)
        good = _query(fields["good"], file) if "good" in fields else None
        bad = _query(fields["bad"], file) if "bad" in fields else None
        for key in ("op", "value"):
            if key in objective:
                raise objective[key].error("op and value belong to a thresholdMetric objective")
        return guarded(ratio, lambda: Counters(total, good, bad))
    series = _query(spec["thresholdMetric"], file)
    if "op" not in objective or "value" not in objective:
        raise at.error("a thresholdMetric objective gives op (lte) and value (the threshold, s)")
    objective["op"].text(allowed=("lte", "lt"))
    value = float(objective["value"].number())
    return guarded(objective["value"], lambda: Latency(series.metric, value, series.matchers))


def _window(at: At) -> int:
    items = at.items()
    if len(items) != 1:
        raise at.error("timeWindow holds exactly one window")
    fields = items[0].fields(("duration",), ("isRolling", "calendar"))
    if "calendar" in fields or ("isRolling" in fields and not fields["isRolling"].flag()):
        raise items[0].error("obskit reads rolling windows (isRolling: true), not calendar ones")
    text = fields["duration"].text()
    if not _DURATION.fullmatch(text):
        raise fields["duration"].error("a duration-shorthand: a positive integer and m h d w M Q Y")
    if text[-1] in "MQY":
        raise fields["duration"].error("months, quarters and years have no fixed length: use days "
                                       "or weeks (28d, 30d, 4w, 90d)")  # fmt: skip
    return parse_duration(text)


_Condition = tuple[At, str, str, Fraction, int, int, int]


def _condition(at: At, file: _File) -> _Condition:
    if isinstance(at.value, dict) and "conditionRef" in at.value:
        obj = file.ref(at.fields(("conditionRef",))["conditionRef"], "AlertCondition")
    else:
        obj = _object(at, "AlertCondition")
    spec = obj.spec.fields(("severity", "condition"), ("description",))
    _description(spec)
    severity = spec["severity"].text(allowed=("page", "ticket"))
    cond = spec["condition"].fields(("op", "threshold", "lookbackWindow"), ("kind", "alertAfter"))
    if "kind" in cond:
        cond["kind"].text(allowed=("burnrate",))
    cond["op"].text(allowed=("gte", "gt"))
    factor = cond["threshold"].number()
    if factor <= 0:
        raise cond["threshold"].error("a burn-rate threshold is positive")
    long = guarded(cond["lookbackWindow"], lambda: parse_duration(cond["lookbackWindow"].text()))
    hold = 0
    if "alertAfter" in cond:
        hold = guarded(cond["alertAfter"], lambda: parse_duration(cond["alertAfter"].text()))
    short_text = obj.obskit("short-window")
    short = guarded(obj.at, lambda: parse_duration(short_text)) if short_text else long // 12
    return (obj.at, obj.name, severity, factor, long, short, hold)


def _tier(condition: _Condition, period: int) -> Tier:
    """The tier of a burn-rate condition: its threshold is the factor, whatever the period."""
    at, name, severity, factor, long, short, hold = condition
    share = factor * long / period
    return guarded(at, lambda: Tier(name, severity, share, long, short, hold))  # type: ignore[arg-type]


def _policy(at: At, file: _File) -> _Condition:
    if isinstance(at.value, dict) and "alertPolicyRef" in at.value:
        obj = file.ref(at.fields(("alertPolicyRef",))["alertPolicyRef"], "AlertPolicy")
    else:
        obj = _object(at, "AlertPolicy")
    spec = obj.spec.fields(
        ("conditions",),
        ("description", "alertWhenNoData", "alertWhenResolved", "alertWhenBreaching",
         "notificationTargets"),
    )  # fmt: skip
    _description(spec)
    for flag in ("alertWhenNoData", "alertWhenResolved", "alertWhenBreaching"):
        if flag in spec:
            spec[flag].flag()
    for target in spec["notificationTargets"].items() if "notificationTargets" in spec else []:
        if isinstance(target.value, dict) and "targetRef" in target.value:
            file.ref(target.fields(("targetRef",))["targetRef"], "AlertNotificationTarget")
        else:
            _object(target, "AlertNotificationTarget")
    conditions = spec["conditions"].items()
    if len(conditions) != 1:
        raise spec["conditions"].error("an AlertPolicy holds exactly one condition")
    return _condition(conditions[0], file)


def _slo(obj: _Object, file: _File) -> Objective:
    spec = obj.spec.fields(
        ("service", "budgetingMethod", "objectives"),
        ("description", "indicator", "indicatorRef", "timeWindow", "alertPolicies"),
    )
    description = _description(spec)
    service = spec["service"].text()
    spec["budgetingMethod"].text(allowed=("Occurrences",))
    objectives = spec["objectives"].items()
    if len(objectives) != 1:
        raise spec["objectives"].error(
            "obskit reads one objective per SLO: write one SLO per target"
        )
    objective = objectives[0].fields(
        (), ("displayName", "op", "value", "target", "targetPercent", "timeSliceTarget",
             "timeSliceWindow", "indicator", "indicatorRef", "compositeWeight"),
    )  # fmt: skip
    for key in ("timeSliceTarget", "timeSliceWindow"):
        if key in objective:
            raise objective[key].error("Timeslices are not read: budgetingMethod is Occurrences")
    for key in ("indicator", "indicatorRef", "compositeWeight"):
        if key in objective:
            raise objective[key].error("composite SLOs are not read: one indicator per SLO")
    if ("target" in objective) == ("targetPercent" in objective):
        raise objectives[0].error("exactly one of target or targetPercent")
    if "target" in objective:
        target = objective["target"].number()
        if not 0 <= target < 1:
            raise objective["target"].error("target is in [0, 1)")
    else:
        target = objective["targetPercent"].number() / 100
        if not 0 <= target < 1:
            raise objective["targetPercent"].error("targetPercent is in [0, 100)")
    if ("indicator" in spec) == ("indicatorRef" in spec):
        raise obj.spec.error("exactly one of indicator or indicatorRef")
    if "indicator" in spec:
        sli = _object(spec["indicator"], "SLI")
    else:
        sli = file.ref(spec["indicatorRef"], "SLI")
    indicator = _indicator(sli.spec, file, objective)
    options: dict[str, Any] = {}
    period = _window(spec["timeWindow"]) if "timeWindow" in spec else 30 * 86400
    options["period"] = f"{period}s"
    if "alertPolicies" in spec:
        conditions = [_policy(p, file) for p in spec["alertPolicies"].items()]
        options["tiers"] = tuple(_tier(c, period) for c in conditions)
    owner = obj.obskit("owner") or _first(obj.labels.get("owner")) or _first(obj.labels.get("team"))
    if not owner:
        raise obj.at.error(
            "no owner: annotate obskit.dev/owner (or label owner/team) with the team"
        )
    if obj.obskit("runbook"):
        options["runbook"] = obj.obskit("runbook")
    if obj.obskit("by-tenant"):
        options["by_tenant"] = _word(obj, "by-tenant")
    if obj.obskit("min-events"):
        options["min_events"] = _count(obj, "min-events")
    if obj.obskit("mitigations"):
        lines = (obj.obskit("mitigations") or "").splitlines()
        options["mitigations"] = tuple(line.strip("-* \t") for line in lines if line.strip())
    return guarded(
        obj.at,
        lambda: Objective(
            name=obj.name,
            indicator=indicator,
            target=target,
            owner=owner,
            service=service,
            description=description,
            **options,
        ),
    )


def _first(values: tuple[str, ...] | None) -> str:
    return values[0] if values else ""


def _word(obj: _Object, key: str) -> bool:
    value = (obj.obskit(key) or "").strip().lower()
    if value not in ("true", "false"):
        raise obj.at.error(f"annotation {_PREFIX}{key} is 'true' or 'false', not {value!r}")
    return value == "true"


def _count(obj: _Object, key: str) -> int:
    value = (obj.obskit(key) or "").strip()
    if not value.isdigit():
        raise obj.at.error(f"annotation {_PREFIX}{key} is a whole number, not {value!r}")
    return int(value)


def parse(docs: Sequence[Document]) -> ObjectiveSet:
    """The objectives of a file of OpenSLO v1 documents (one object, or a list, each)."""
    file = _File(docs)
    slos = [obj for (kind, _), obj in file.objects.items() if kind == "SLO"]
    if not slos:
        raise SpecError(f"{docs[0].file}: no SLO object (kind: SLO) in the file")
    for (kind, _), obj in file.objects.items():
        if kind in ("Service", "DataSource", "AlertNotificationTarget"):
            allowed = {
                "Service": ("description",),
                "DataSource": ("type", "description", "connectionDetails"),
                "AlertNotificationTarget": ("target", "description"),
            }
            obj.spec.fields((), allowed[kind])  # fmt: skip
    return ObjectiveSet(tuple(_slo(obj, file) for obj in slos))
