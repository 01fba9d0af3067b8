"""Helpers for tests of applications that use obskit (and for obskit's own tests).

``with obskit.testing.capture_logs() as lines:`` collects the final event dict of every line
logged in the block, after redaction. ``with obskit.testing.capture_spans() as spans:`` collects
every span the tail sampler kept (with its sampling attributes) as it is queued for export.
``with obskit.testing.isolated(**settings) as env:`` gives a block its own freshly initialised
obskit on a private metrics registry and resets it on exit.
``obskit.testing.reset()`` forgets all obskit state (what was tracked included).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from prometheus_client import CollectorRegistry

from obskit import _runtime
from obskit.logs import setup as log_setup

__all__ = ["Capture", "capture_logs", "capture_spans", "flush", "isolated", "reset"]


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Collect the event dicts of every line written (or held) inside the block."""
    lines: list[dict[str, Any]] = []
    sink = log_setup.sink()
    sink.taps.append(lines)
    try:
        yield lines
    finally:
        sink.taps.remove(lines)


@contextmanager
def capture_spans() -> Iterator[list[ReadableSpan]]:
    """Collect every kept span queued for export inside the block (decided traces only).

    Traces still undecided when the block ends are not included: call :func:`flush` inside the
    block to decide them first.
    """
    from obskit.tracing import export

    spans: list[ReadableSpan] = []
    export.TAPS.append(spans)
    try:
        yield spans
    finally:
        export.TAPS.remove(spans)


def flush(timeout: float = 5.0) -> bool:
    """Decide every pending trace and export what is queued; False if ``timeout`` was too short."""
    runtime = _runtime.current()
    component = runtime.components.get("tracing") if runtime is not None else None
    processor = getattr(component, "processor", None)
    if processor is None:
        return True
    return bool(processor.force_flush(int(timeout * 1000)))


class Capture:
    """What an :func:`isolated` block produced: its registry, log lines and raw output."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.logs: list[dict[str, Any]] = []
        self.output = io.BytesIO()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of one sample on the block's registry, or None when absent."""
        return self.registry.get_sample_value(name, labels or {})

    def output_lines(self) -> list[str]:
        """The raw lines written to the log stream during the block."""
        return self.output.getvalue().decode("utf-8").splitlines()


@contextmanager
def isolated(**settings: Any) -> Iterator[Capture]:
    """Run the block with its own obskit (private registry, logs captured); reset afterwards.

    What the application tracked or named to obskit before the block (a queue, a thread pool, an
    event loop to monitor) is carried into it, as ``init()`` carries it; whatever the block
    tracked is forgotten when it ends (:func:`reset`).
    """
    _runtime.reset(keep_registered=True)
    registry = settings.pop("registry", None) or CollectorRegistry()
    capture = Capture(registry)
    settings.setdefault("log_format", "json")
    _runtime.init(registry=registry, **settings)
    log_setup.sink().stream = capture.output
    try:
        with capture_logs() as lines:
            capture.logs = lines
            yield capture
    finally:
        reset()


def reset() -> None:
    """Shut obskit down and forget every piece of its state."""
    _runtime.reset()
