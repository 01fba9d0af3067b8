"""An OpenFeature hook: which flag variant each request ran, on its span, its logs and metrics.

::

    from openfeature import api
    from obskit.feature_flags import ObskitHook

    api.add_hooks([ObskitHook(metric_flags={"new-checkout"})])

For every evaluation (``finally_after``, so errors and defaults too) the hook records the flag
key and the variant — **never the value**, which may be anything a provider returns:

* on the current span, an event ``feature_flag.evaluation`` with ``feature_flag.key``,
  ``feature_flag.result.variant``, ``feature_flag.result.reason``, ``feature_flag.provider.name``
  (and ``error.type`` when the evaluation failed), the OpenTelemetry semantic conventions' names;
* on every later log line of the request (or ``@obskit.red`` call) that evaluated it, the field
  ``feature_flag.<key>`` = variant;
* for the flags in ``metric_flags`` only, on metrics (variants through the cardinality guard):
  ``obskit_feature_flag_evaluations_total`` and, when the request ends,
  ``obskit_feature_flag_request_duration_seconds`` — so ``obskit canary judge --baseline
  '{feature_flag_key="new-checkout",feature_flag_variant="off"}' --canary '{...="on"}'`` judges a
  percentage rollout variant against variant.

For the incident timeline, the hook logs the event ``feature_flag.evaluation`` (logger
``obskit.feature_flags``, level info) when a flag returns a variant this process had not
returned for it in the previous :data:`QUIET_S` seconds — its first evaluation, a flag turned on
or off, a rollout starting — with the fields above and ``feature_flag.previous_variant``. A steady
flag therefore logs once, and a flag changing logs each change.

Nothing here raises into the evaluation: failures are counted in
``obskit_internal_errors_total{component="feature_flags"}``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

from openfeature.flag_evaluation import FlagEvaluationDetails
from openfeature.hook import Hook, HookContext, HookHints
from opentelemetry import trace

from obskit import _guard, _locks, context
from obskit.metrics import flags as flag_metrics

__all__ = ["EVENT", "QUIET_S", "ObskitHook"]

EVENT: Final = "feature_flag.evaluation"
QUIET_S: Final = 60.0
MAX_REMEMBERED: Final = 1024


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))  # enums (Reason, ErrorCode) by their value


class ObskitHook(Hook):
    """Records flag evaluations on spans, log lines and (for ``metric_flags``) metrics."""

    def __init__(self, metric_flags: Iterable[str] = (), *, quiet_s: float = QUIET_S) -> None:
        if isinstance(metric_flags, str):
            raise TypeError("metric_flags is a collection of flag keys, not one string")
        self.metric_flags = frozenset(metric_flags)
        self.quiet_s = quiet_s
        # (flag key, variant) -> when last seen; oldest first, bounded.
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._last: dict[str, str] = {}
        self._lock = _locks.lock()

    def finally_after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[Any],
        hints: HookHints,
    ) -> None:
        """After every evaluation, successful or not."""
        try:
            self._record(hook_context, details)
        except Exception as exc:
            _guard.report("feature_flags", exc)

    def _record(self, hook_context: HookContext, details: FlagEvaluationDetails[Any]) -> None:
        key = details.flag_key or hook_context.flag_key
        variant = details.variant or ""
        provider = getattr(hook_context.provider_metadata, "name", "") or ""
        attributes = {
            "feature_flag.key": key,
            "feature_flag.result.variant": variant,
            "feature_flag.result.reason": _text(details.reason).lower(),
            "feature_flag.provider.name": provider,
        }
        if details.error_code is not None:
            attributes["error.type"] = _text(details.error_code).lower()
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(EVENT, attributes)
        if context.CORRELATION_ID in context.current_fields():
            # Inside a unit of work (a request, an @obskit.red call), which ends the bind; outside
            # one a bind would stay on every later line of the thread.
            context.bind(**{f"feature_flag.{key}": variant})
        if key in self.metric_flags:
            flag_metrics.evaluated(key, variant)
        previous = self._changed(key, variant)
        if previous is not None:
            from obskit.logs import get_logger

            get_logger("obskit.feature_flags").info(
                EVENT, **attributes, **{"feature_flag.previous_variant": previous}
            )

    def _changed(self, key: str, variant: str) -> str | None:
        """The variant returned before when this one is new (or back) after a quiet time."""
        now = time.monotonic()
        pair = (key, variant)
        with self._lock:
            last_seen = self._seen.pop(pair, None)
            self._seen[pair] = now
            if len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
            previous = self._last.get(key, "")
            if len(self._last) < MAX_REMEMBERED or key in self._last:
                self._last[key] = variant
        if last_seen is not None and now - last_seen < self.quiet_s:
            return None
        return previous if previous != variant else ""
