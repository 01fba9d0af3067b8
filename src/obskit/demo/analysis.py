"""Turning the demo's artifacts (a metrics scrape, kept spans, log lines) into report figures.

Quantiles are computed from histogram buckets the way PromQL's ``histogram_quantile`` does
(linear interpolation inside the bucket), so the report shows what a dashboard would.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Red", "Scrape", "bucket_quantile", "read_jsonl", "red_by"]

DURATION = "http_server_request_duration_seconds"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sample of a scrape."""

    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """A parsed text-format exposition."""

    def __init__(self, text: str) -> None:
        self.samples = [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def find(self, name: str, **labels: str) -> Iterator[Sample]:
        """Samples named ``name`` whose labels include ``labels``."""
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                yield sample

    def total(self, name: str, **labels: str) -> float:
        """Sum of the matching samples (0 when there is none)."""
        return sum(s.value for s in self.find(name, **labels))

    def value(self, name: str, **labels: str) -> float | None:
        """The first matching sample's value."""
        return next((s.value for s in self.find(name, **labels)), None)


def bucket_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` over cumulative ``{upper bound: count}`` buckets."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return bounds[-1]


@dataclasses.dataclass
class Red:
    """Rate, errors and duration of one group of requests."""

    key: str
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = dataclasses.field(default_factory=lambda: defaultdict(float))

    def quantile(self, q: float) -> float | None:
        """A latency quantile in seconds."""
        return bucket_quantile(q, self.buckets)

    @property
    def error_ratio(self) -> float:
        """Share of requests answered with a 5xx."""
        return self.errors / self.requests if self.requests else 0.0


def red_by(scrape: Scrape, label: str, name: str = DURATION) -> dict[str, Red]:
    """RED of the HTTP duration histogram grouped by one label (``http_route``, ``tenant_id``)."""
    groups: dict[str, Red] = {}
    for sample in scrape.samples:
        if not sample.name.startswith(name):
            continue
        key = sample.labels.get(label, "")
        red = groups.setdefault(key, Red(key))
        status = sample.labels.get("http_response_status_code", "")
        if sample.name == f"{name}_count":
            red.requests += sample.value
            if status.startswith("5"):
                red.errors += sample.value
        elif sample.name == f"{name}_bucket":
            red.buckets[float(sample.labels["le"])] += sample.value
    return groups


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; lines that are not JSON are skipped."""
    if not path.exists():
        return []
    objects = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("{"):
                try:
                    objects.append(json.loads(line))
                except ValueError:
                    continue
    return objects
