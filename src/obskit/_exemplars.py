"""One keep/drop decision per trace, shared with the exemplars that link metrics to traces.

A metric observation made inside a trace *offers* its exemplar here instead of attaching it
directly. Without a tail sampler the offer is applied at once. The tail sampler installs a gate
that applies it only if and when the trace is kept, so a dashboard never links to a trace that
was dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["ExemplarGate", "gate", "set_gate"]

Apply = Callable[[], None]


class ExemplarGate(Protocol):
    """Decides whether (and when) an exemplar for ``trace_id`` is attached."""

    def offer(self, trace_id: int, apply: Apply) -> None:
        """Call ``apply`` once the trace is known to be kept; never if it is dropped."""


class _Immediate:
    """No tail sampling: every sampled trace is exported, so every exemplar is valid."""

    def offer(self, trace_id: int, apply: Apply) -> None:
        apply()


_IMMEDIATE = _Immediate()
gate: ExemplarGate = _IMMEDIATE
# The gate's optional ``wants(trace_id) -> bool``: False once no exemplar of that trace can be
# applied any more (its trace is known dropped; the gate counts the exemplar as discarded), so
# the caller builds none. Answered without a lock; None when the gate has no such method.
wants: Callable[[int], bool] | None = None


def set_gate(new: ExemplarGate | None) -> None:
    """Install the tail sampler's gate (or restore immediate application with None)."""
    global gate
    global wants
    gate = new if new is not None else _IMMEDIATE
    wants = getattr(gate, "wants", None)
