"""Spans cleaned by the one redaction policy before any exporter sees them.

:class:`SpanScrubber` applies :mod:`obskit.logs.redaction` to everything of a span that holds
text from the application, the request or the configuration: its name, attributes, events (an
exception event's message and stack trace), links, status description and resource (cleaned
once per resource: every span of a provider shares one). It runs on the export worker, not on
the request path, for every exporter alike (OTLP, the local file sink, the console, collector
mode, a custom ``span_exporter``); the capture taps of ``obskit.testing`` get the same spans.

A span with nothing to clean is passed on as it is; otherwise a copy is made (a ``ReadableSpan``
is frozen). If cleaning itself fails, the span still goes out, with every text value replaced:
a bug here must neither lose the trace nor let a secret through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status

from obskit import _guard
from obskit._compat import otel as otel_compat
from obskit.logs import redaction
from obskit.logs.redaction import REDACTED, Redactor

__all__ = ["SpanScrubber"]


class SpanScrubber:
    """Cleans spans for export under the configured policy (counted as the ``span`` signal).

    Without a ``redactor`` it follows the live configuration: a re-``init()`` that changes
    ``redact``, ``redact_keys`` or ``max_value_length`` applies to the next batch, with no
    rebuild of the tracing it runs in.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._fixed = redactor.view("span") if redactor is not None else None
        self._redactor = self._fixed if self._fixed is not None else redaction.current("span")
        # (resource, policy, its cleaned form): swapped whole, as the export worker and a
        # capture tap's thread may both clean spans.
        self._resource: tuple[object, object, Resource | None] = (None, None, None)

    def __call__(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` itself when it has nothing to clean, else a cleaned copy."""
        try:
            return self._clean(span)
        except Exception as exc:
            _guard.report("tracing.redaction", exc)
            seen, _, cleaned = self._resource
            resource = cleaned if seen is span._resource else _opaque_resource(span._resource)
            return _stripped(span, resource)

    def scrub_all(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        """Every span of ``spans`` cleaned (under the policy configured now)."""
        if self._fixed is None:
            self._redactor = redaction.current("span")
        return [self(span) for span in spans]

    def _clean(self, span: ReadableSpan) -> ReadableSpan:
        redactor = self._redactor
        name = redactor.clean_text(span._name) if span._name else span._name
        attributes = span._attributes
        clean_attributes = redactor.clean_mapping(attributes) if attributes else attributes
        if clean_attributes:
            clean_attributes = _route_params(redactor, clean_attributes)
        events = span._events
        clean_events = tuple(self._event(event) for event in events) if events else events
        links = span._links
        clean_links = tuple(self._link(link) for link in links) if links else links
        status = span._status
        description = status.description
        if description:
            clean = redactor.clean_text(description)
            if clean is not description:
                status = Status(status.status_code, clean)
        resource = self._clean_resource(span._resource)
        if (
            name is span._name
            and clean_attributes is attributes
            and status is span._status
            and resource is span._resource
            and _same(clean_events, events)
            and _same(clean_links, links)
        ):
            return span
        return _copy(span, name, clean_attributes, clean_events, clean_links, status, resource)

    def _clean_resource(self, resource: Resource | None) -> Resource | None:
        seen, policy, cleaned = self._resource
        if seen is resource and policy is self._redactor:
            return cleaned
        cleaned = resource
        if resource is not None:
            attributes = resource.attributes
            clean = self._redactor.clean_mapping(attributes)
            if clean is not attributes:
                cleaned = Resource(dict(clean), resource.schema_url)
        self._resource = (resource, self._redactor, cleaned)
        return cleaned

    def _event(self, event: Event) -> Event:
        attributes = event.attributes
        clean = self._redactor.clean_mapping(attributes) if attributes else attributes
        name = self._redactor.clean_text(event.name)
        if clean is attributes and name is event.name:
            return event
        return Event(name, clean, event.timestamp)

    def _link(self, link: Link) -> Link:
        attributes = link.attributes
        clean = self._redactor.clean_mapping(attributes) if attributes else attributes
        if clean is attributes:
            return link
        return Link(link.context, clean)


def _route_params(redactor: Redactor, attributes: Any) -> Any:
    """``attributes`` with the segments of ``url.path`` that ``http.route`` names as secret
    parameters replaced (``/reset/{token}``)."""
    route = attributes.get("http.route")
    path = attributes.get("url.path")
    if type(route) is not str or type(path) is not str:
        return attributes
    cleaned = redactor.clean_path(path, route)
    if cleaned is path:
        return attributes
    return {**attributes, "url.path": cleaned}


def _same(new: Sequence[Any] | None, old: Sequence[Any] | None) -> bool:
    if new is old or not old:
        return True
    return all(a is b for a, b in zip(new or (), old, strict=True))


def _copy(
    span: ReadableSpan,
    name: str,
    attributes: Any,
    events: Any,
    links: Any,
    status: Status,
    resource: Resource | None,
) -> ReadableSpan:
    return otel_compat.copy_span(
        span,
        name=name,
        resource=resource,
        attributes=attributes,
        events=events,
        links=links,
        status=status,
    )


def _opaque(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Only the numbers and booleans of ``attributes``; any text replaced."""
    return {
        key: value if isinstance(value, (bool, int, float)) else REDACTED
        for key, value in (attributes or {}).items()
    }


def _opaque_resource(resource: Resource | None) -> Resource | None:
    if resource is None:
        return None
    return Resource(_opaque(resource.attributes), resource.schema_url)


def _stripped(span: ReadableSpan, resource: Resource | None) -> ReadableSpan:
    """``span`` with every text it holds replaced (cleaning it failed); ``resource`` as cleaned
    before, when it was."""
    events = tuple(
        Event(event.name, _opaque(event.attributes), event.timestamp) for event in span._events
    )
    links = tuple(Link(link.context, _opaque(link.attributes)) for link in span._links)
    status = Status(span._status.status_code)
    return _copy(span, REDACTED, _opaque(span._attributes), events, links, status, resource)
