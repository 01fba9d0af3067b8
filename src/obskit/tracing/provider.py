"""The process-wide tracer provider obskit installs once, pointing at the live configuration.

The OpenTelemetry API lets the global provider be set only once per process. obskit is
reconfigurable (``init()`` again, a fork rebuilding the tracing in the child, ``shutdown()``), so
the global is a :class:`SwitchingTracerProvider` whose tracers forward to whichever SDK provider
is live (or to a no-op tracer when none is). It is installed only if no provider was set before
``init()``; an application that set its own keeps it.

:func:`get_tracer` (``obskit.get_tracer``) hands out the same switching tracers whether or not
the switch is the global provider: a tracer taken at import time, before ``init()``, follows
every later configuration and fork.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span
from opentelemetry.util import types

from obskit._identity import OBSKIT_VERSION

__all__ = ["SwitchingTracerProvider", "detach", "get_tracer", "install_global"]


class SwitchingTracerProvider(trace.TracerProvider):
    """A tracer provider whose tracers follow ``target`` (an SDK provider, or None)."""

    def __init__(self) -> None:
        self._target: trace.TracerProvider | None = None
        # Processors the application added to the global provider: they follow every target.
        self._added: list[Any] = []

    @property
    def target(self) -> trace.TracerProvider | None:
        """The live SDK provider (None while obskit is not initialised)."""
        return self._target

    @target.setter
    def target(self, provider: trace.TracerProvider | None) -> None:
        previous, self._target = self._target, provider
        if provider is not None and provider is not previous:
            for processor in self._added:
                provider.add_span_processor(processor)  # type: ignore[attr-defined]

    def add_span_processor(self, span_processor: Any) -> None:
        """Add an application's processor (e.g. its own exporter) to the live provider.

        Code written for the SDK calls this on the global provider; it keeps working, also
        across a reconfiguration or a fork, which build a new SDK provider.
        """
        self._added.append(span_processor)
        target = self._target
        if target is not None:
            target.add_span_processor(span_processor)  # type: ignore[attr-defined]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the live provider's processors."""
        target = self._target
        flush = getattr(target, "force_flush", None)
        return bool(flush(timeout_millis)) if flush is not None else True

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace.Tracer:
        """A tracer that resolves the live provider's tracer when it is used."""
        return _SwitchingTracer(
            self,
            (instrumenting_module_name, instrumenting_library_version, schema_url, attributes),
        )


_NOOP = trace.NoOpTracer()


class _SwitchingTracer(trace.Tracer):
    """Starts each span on the tracer of the provider live at that moment (or a no-op one).

    The tracer for a provider is looked up once and kept with it as one pair, so that a thread
    reading it while another replaces it sees a provider and its own tracer, never a mix.
    """

    def __init__(self, provider: SwitchingTracerProvider, args: tuple[Any, ...]) -> None:
        self._provider = provider
        self._args = args
        self._live: tuple[trace.TracerProvider | None, trace.Tracer] = (None, _NOOP)

    def _current(self) -> trace.Tracer:
        target = self._provider._target
        live = self._live
        if live[0] is not target:
            live = (target, target.get_tracer(*self._args) if target is not None else _NOOP)
            self._live = live
        return live[1]

    # Both forward their arguments as given (as OpenTelemetry's own proxy tracer does): the
    # live tracer's signature is the one that counts, whichever API version is installed.

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        """Start a span on the live provider (``Tracer.start_span``'s arguments)."""
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        """Start a span on the live provider, current for the block (or the decorated call).

        The live tracer's own context manager is handed back as it is: no wrapper per span.
        """
        return self._current().start_as_current_span(*args, **kwargs)


_SWITCH = SwitchingTracerProvider()


def detach(provider: trace.TracerProvider | None) -> None:
    """Point the switch away from ``provider`` if it is the live one (lock-free)."""
    if provider is not None and _SWITCH.target is provider:
        _SWITCH.target = None


def install_global(provider: trace.TracerProvider | None) -> bool:
    """Point the switch at ``provider``; make the switch the global provider if none was set.

    Returns whether obskit's switch is the global provider.
    """
    _SWITCH.target = provider
    current = trace.get_tracer_provider()
    if current is _SWITCH:
        return True
    if provider is not None and isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(_SWITCH)
        return trace.get_tracer_provider() is _SWITCH
    return False


_OBSKIT_TRACER = _SWITCH.get_tracer("obskit", OBSKIT_VERSION)


def get_tracer(name: str | None = None, version: str | None = None) -> trace.Tracer:
    """A tracer for your code that starts every span on the tracer obskit has live right then.

    Take it anywhere, also at import time before ``init()``: ``tracer =
    obskit.get_tracer(__name__)``. Its spans are no-ops while obskit is not initialised (or
    tracing is off), go through the tail sampler once it is, follow a re-``init()``, and in a
    forked worker carry that worker's ``service.instance.id`` and reach its own sampler. As
    OpenTelemetry's own proxy tracer does; ``name`` and ``version`` name the instrumentation
    scope (obskit's own by default).
    """
    if name is None:
        return _OBSKIT_TRACER
    return _SWITCH.get_tracer(name, version)
