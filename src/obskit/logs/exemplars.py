"""Exemplar labels as the redaction policy lets them leave: redacted, and within Prometheus's
128-character cap on an exemplar's label names and values together."""

from __future__ import annotations

from typing import Final

from obskit.logs import redaction
from obskit.logs.redaction_counts import count
from obskit.logs.secret_shapes import REDACTED

__all__ = ["MAX_EXEMPLAR_LABELS", "exemplar_labels"]

#: Prometheus's cap on an exemplar's label names and values together, in characters.
MAX_EXEMPLAR_LABELS: Final = 128


def exemplar_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` as an exemplar may carry them: redacted, and at most 128 characters in all
    (Prometheus rejects more); values are cut from the last label backwards."""
    total = 0
    for key, value in labels.items():
        total += len(key) + len(value)
    policy = redaction.current()
    if total <= MAX_EXEMPLAR_LABELS and not any(map(policy.is_secret_key, labels)):
        return labels
    view = policy.view("exemplar")
    out = {k: (REDACTED if view.is_secret_key(k) else v) for k, v in labels.items()}
    if view.secrets and out != labels:
        count("redacted", "exemplar", sum(1 for k in labels if out[k] != labels[k]))
    excess = sum(len(k) + len(v) for k, v in out.items()) - MAX_EXEMPLAR_LABELS
    if excess > 0:
        count("truncated", "exemplar", 1)
        for key in reversed(list(out)):
            cut = min(excess, len(out[key]))
            out[key] = out[key][: len(out[key]) - cut]
            excess -= cut
            if excess <= 0:
                break
        if excess > 0:  # the names alone are too long: drop labels from the end
            for key in reversed(list(out)):
                del out[key]
                excess -= len(key)
                if excess <= 0:
                    break
    return out
