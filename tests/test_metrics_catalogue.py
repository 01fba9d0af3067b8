"""The metric catalogue: consistent in itself, matched by every exposition, and by the docs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import obskit.testing
from metrics_support import OPENMETRICS, Parsed, every_family_driven, parse, scrape
from obskit.metrics import catalogue
from obskit.metrics.catalogue import Family

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class TestCatalogue:
    def test_names_are_unique_and_valid(self) -> None:
        """No two families share a name or a series name; names and labels are Prometheus-valid."""
        names = [f.name for f in catalogue.FAMILIES]
        assert len(names) == len(set(names))
        series = [s for f in catalogue.FAMILIES for s in f.samples()]
        assert len(series) == len(set(series))
        for family in catalogue.FAMILIES:
            others = set(series) - set(family.samples())
            assert family.name not in others, family.name
        for family in catalogue.FAMILIES:
            assert NAME.match(family.name), family.name
            assert all(LABEL.match(label) for label in family.labels), family
            assert len(family.labels) == len(set(family.labels)), family
            assert "le" not in family.labels, family
            assert "pid" not in family.labels, family

    def test_units_and_suffixes(self) -> None:
        """A family with a unit ends in it; no name ends like a series of its own (_total, ...)."""
        for family in catalogue.FAMILIES:
            if family.unit:
                assert family.name.endswith("_" + family.unit), family.name
            assert not family.name.endswith(("_total", "_count", "_bucket", "_sum")), family.name

    def test_histograms_have_increasing_buckets(self) -> None:
        """Histograms carry sorted, positive, finite bucket bounds; other types carry none."""
        for family in catalogue.FAMILIES:
            if family.type == "histogram":
                assert family.buckets, family.name
                assert list(family.buckets) == sorted(set(family.buckets)), family.name
                assert 0 < family.buckets[0], family.name
                assert float("inf") != family.buckets[-1], family.name
            else:
                assert () == family.buckets, family.name

    def test_worker_policy_fits_the_type(self) -> None:
        """Only gauges (and infos) may be per worker; counters and histograms add up or agree."""
        for family in catalogue.FAMILIES:
            if family.type in ("counter", "histogram"):
                assert family.workers in ("sum", "same"), family.name

    def test_lookup_by_any_series_name(self) -> None:
        """family() finds a family by its name or any series name, and names what is unknown."""
        assert catalogue.BUILD_INFO is catalogue.family("obskit_build_info")
        assert catalogue.BUILD_INFO is catalogue.family("obskit_build")
        duration = catalogue.HTTP_SERVER_DURATION
        assert duration is catalogue.family("http_server_request_duration_seconds_bucket")
        assert catalogue.FUNCTION_CALLS is catalogue.family("obskit_function_calls_total")
        with pytest.raises(KeyError, match="nope_total"):
            catalogue.family("nope_total")
        with pytest.raises(KeyError, match="nowhere"):
            catalogue.group("nowhere")

    def test_series_names_and_le(self) -> None:
        """Series names follow the type; le labels are spelled exactly as exposed."""
        duration = catalogue.HTTP_SERVER_DURATION
        assert "http_server_request_duration_seconds_bucket" == duration.bucket
        assert "http_server_request_duration_seconds_count" == duration.count
        assert "http_server_request_duration_seconds_sum" == duration.sum
        assert "obskit_function_calls_total" == catalogue.FUNCTION_CALLS.sample
        assert "obskit_build_info" == catalogue.BUILD_INFO.sample
        assert "http_server_active_requests" == catalogue.HTTP_SERVER_ACTIVE.sample
        with pytest.raises(TypeError):
            _ = duration.sample
        with pytest.raises(TypeError):
            _ = catalogue.FUNCTION_CALLS.bucket
        assert "1.0" == catalogue.le(1)
        assert "0.005" == catalogue.le(0.005)
        assert "+Inf" == catalogue.le(float("inf"))
        assert ("0.005", "0.01") == duration.le_values()[:2]
        assert "+Inf" == duration.le_values()[-1]
        assert () == catalogue.FUNCTION_CALLS.le_values()

    def test_every_entry_is_used_by_the_code(self) -> None:
        """Each family in the catalogue is emitted somewhere in src (no stale entry)."""
        sources = "\n".join(
            path.read_text()
            for path in (ROOT / "src" / "obskit").rglob("*.py")
            if path.name != "catalogue.py"
        )
        constants = {
            name: value for name, value in vars(catalogue).items() if isinstance(value, Family)
        }
        unused = [
            name
            for name, family in constants.items()
            if not re.search(rf"\b{name}\b", sources)
            and f'"{family.name}"' not in sources
            and f'catalogue.group("{family.group}")' not in sources
        ]
        assert [] == unused


def _exposition_families(tmp_path: Path, *, openmetrics: bool) -> list[Parsed]:
    with (
        obskit.testing.isolated(service_name="catalogue", trace_sink=str(tmp_path / "spans.jsonl")),
        every_family_driven(),
    ):
        obskit.testing.flush()
        return list(parse(scrape(OPENMETRICS if openmetrics else ""), openmetrics))


def test_every_exposed_family_is_in_the_catalogue(tmp_path: Path) -> None:
    """Each family a fully driven runtime exposes is declared, with its type, help and labels."""
    exposed = _exposition_families(tmp_path, openmetrics=True)
    assert len(exposed) > 40
    problems = []
    for parsed in exposed:
        name = parsed.name
        try:
            declared = catalogue.family(name)
        except KeyError:
            problems.append(f"{name}: not in the catalogue")
            continue
        if declared.name != name:
            problems.append(f"{name}: declared as {declared.name}")
        if declared.type != parsed.type:
            problems.append(f"{name}: type {parsed.type}, declared {declared.type}")
        if declared.help != parsed.help:
            problems.append(f"{name}: help {parsed.help!r}")
        extra = parsed.labels - set(declared.labels) - {"le"}
        if extra:
            problems.append(f"{name}: undeclared labels {sorted(extra)}")
    assert [] == problems


def test_every_declared_family_is_exposed(tmp_path: Path) -> None:
    """A fully driven runtime exposes every family of the catalogue, save conditional ones."""
    exposed = {p.name for p in _exposition_families(tmp_path, openmetrics=True)}
    # Absent without a cgroup limit (this machine may have none), a monitored event loop or PSI.
    conditional = {
        catalogue.CGROUP_CPU_LIMIT.name,
        catalogue.CGROUP_MEMORY_LIMIT.name,
        catalogue.CGROUP_MEMORY_UTILIZATION.name,
        catalogue.PRESSURE_STALLED.name,
        *(f.name for f in catalogue.group("use.event_loop")),
        *(f.name for f in catalogue.group("use.cgroup")),
    }
    missing = [f.name for f in catalogue.FAMILIES if f.name not in exposed | conditional]
    assert [] == missing


# --- the documentation -------------------------------------------------------------------------


def test_reference_matches_catalogue() -> None:
    """docs/metrics.md's reference tables are exactly what the catalogue generates."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import metrics_reference
    finally:
        sys.path.pop(0)
    text = (ROOT / "docs" / "metrics.md").read_text()
    assert metrics_reference.BEGIN in text
    assert metrics_reference.render(text) == text, "run scripts/metrics_reference.py"


ROW = re.compile(r"^\| `([a-z_:]+)` \| ([a-z]+)")


@pytest.mark.parametrize("page", ["metrics.md", "use.md"])
def test_hand_written_tables_name_catalogue_families(page: str) -> None:
    """Every family row in the prose tables names a catalogue family, its type and its labels."""
    text = (ROOT / "docs" / page).read_text()
    body = text.split("<!-- BEGIN metrics reference", 1)[0]
    problems = []
    rows = 0
    for line in body.splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        name, kind = match.groups()
        if kind not in ("counter", "gauge", "histogram", "info"):
            continue
        rows += 1
        try:
            declared = catalogue.family(name)
        except KeyError:
            problems.append(f"{name}: not in the catalogue")
            continue
        if name != declared.text_name:
            problems.append(f"{name}: exposed as {declared.text_name}")
        if kind != declared.type:
            problems.append(f"{name}: documented as {kind}, declared {declared.type}")
        missing = [label for label in declared.labels if f"`{label}`" not in line]
        if missing:
            problems.append(f"{name}: labels {missing} not documented")
    assert rows >= 5
    assert [] == problems
