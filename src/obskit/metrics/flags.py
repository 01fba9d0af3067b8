"""Feature-flag variants on metrics: the families a rollout behind a flag is judged with.

The OpenFeature hook (:mod:`obskit.feature_flags`) calls :func:`evaluated` for each evaluation of
a flag the user allowed on metrics. That counts it in ``obskit_feature_flag_evaluations_total
{feature_flag_key, feature_flag_variant}`` and notes the variant for the current request; when the
request ends, the middleware calls :func:`request_finished`, which records the request's duration
in ``obskit_feature_flag_request_duration_seconds{feature_flag_key, feature_flag_variant,
http_route, error_type, tenant_id}`` once per flag it evaluated. A canary judge comparing
``feature_flag_variant="on"`` with ``"off"`` reads that family exactly like the HTTP one.

Variants go through the runtime's cardinality guard for ``feature_flag_variant`` and tenants
through the tenant guard. The per-request note is a context variable the middleware reads with
one lookup and clears; an evaluation made in a thread the request did not copy its context to
(``asyncio.to_thread`` copies it) cannot be seen by the request that started it.
"""

from __future__ import annotations

import contextvars
from typing import Any, Final

from obskit import _caches, _guard, _live, _locks
from obskit.metrics.catalogue import FEATURE_FLAG_EVALUATIONS, FEATURE_FLAG_REQUEST_DURATION

__all__ = ["current", "evaluated", "request_finished"]

VARIANT_LABEL: Final = "feature_flag_variant"
# Flags noted per request at most (a request evaluating more is recorded under its first ones).
MAX_PER_REQUEST: Final = 16

_noted: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "obskit_feature_flags", default=None
)
#: The current request's allowed flags -> variant (None: none evaluated): one C call.
current: Final = _noted.get


class _Families:
    def __init__(self, component: Any) -> None:
        store = component.store
        self.evaluations = store.counter(
            FEATURE_FLAG_EVALUATIONS.name,
            FEATURE_FLAG_EVALUATIONS.help,
            FEATURE_FLAG_EVALUATIONS.labels,
        )
        self.duration = store.histogram(
            FEATURE_FLAG_REQUEST_DURATION.name,
            FEATURE_FLAG_REQUEST_DURATION.help,
            FEATURE_FLAG_REQUEST_DURATION.labels,
            FEATURE_FLAG_REQUEST_DURATION.buckets,
        )
        self.variants = component.guard(VARIANT_LABEL)
        self.tenants = component.tenant_guard
        self.children: dict[tuple[str, ...], Any] = {}
        self.lock = _locks.lock()

    def child(self, family: Any, key: tuple[str, ...]) -> Any:
        child = self.children.get(key)
        if child is None:
            child = family.labels(*key[1:])
            with self.lock:
                if len(self.children) < 10_000:
                    self.children[key] = child
        return child


def _live_families() -> _Families | None:
    component = _live.metrics()
    return _Families(component) if component is not None else None


_families = _caches.Slot(_live_families).get


def evaluated(flag_key: str, variant: str) -> None:
    """One evaluation of an allowed flag: counted, and noted for the current request."""
    try:
        families = _families()
        if families is None:
            return
        label = families.variants(variant) if variant else ""
        families.child(families.evaluations, ("e", flag_key, label)).inc()
        noted = _noted.get()
        if noted is None:
            _noted.set({flag_key: label})
        elif flag_key in noted or len(noted) < MAX_PER_REQUEST:
            noted[flag_key] = label  # the latest evaluation in the request wins
    except Exception as exc:
        _guard.report("metrics.flags", exc)


def request_finished(
    noted: dict[str, str], route: str, error_type: str, duration: float, tenant: str | None
) -> None:
    """Record a finished request once per allowed flag it evaluated; forget the note."""
    try:
        _noted.set(None)
        families = _families()
        if families is None:
            return
        tenant_label = families.tenants(tenant) if tenant else ""
        for flag_key, variant in noted.items():
            key = ("d", flag_key, variant, route, error_type, tenant_label)
            families.child(families.duration, key).observe(duration)
    except Exception as exc:
        _guard.report("metrics.flags", exc)
