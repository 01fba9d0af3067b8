"""The metrics component: build info, bounded families, fork reset, registries, promtool."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tests.conftest import require_binary

import obskit
import obskit.testing
from obskit import _live, _runtime
from obskit._config import load_settings
from obskit._identity import OBSKIT_VERSION, identity, iso_time, process_start_time
from obskit.metrics._store import Store


def _build_info(cap: obskit.testing.Capture) -> dict[str, str]:
    families = [f for f in cap.registry.collect() if f.name == "obskit_build"]
    assert 1 == len(families)
    (sample,) = families[0].samples
    assert 1.0 == sample.value
    return dict(sample.labels)


def test_build_info_carries_the_identity() -> None:
    """obskit_build_info shows service name, version, environment, revision, obskit and Python
    versions, and when this process started."""
    with obskit.testing.isolated(
        service_name="checkout", service_version="1.4.2", environment="prod", vcs_revision="abc123"
    ) as cap:
        labels = {
            "service_name": "checkout",
            "service_version": "1.4.2",
            "deployment_environment": "prod",
            "obskit_version": OBSKIT_VERSION,
            "python_version": platform.python_version(),
            "vcs_revision": "abc123",
            "process_start_time": iso_time(process_start_time()),
        }
        assert labels == _build_info(cap)
    assert obskit.__version__ == OBSKIT_VERSION


def test_a_restart_is_a_new_build_info_series() -> None:
    """A process started later reads a later start from /proc, so a restart of the same
    version exposes another process_start_time label: a new series Prometheus can see."""
    started = process_start_time()
    assert started <= time.time()
    script = "from obskit._identity import iso_time, process_start_time as p; print(p())"
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert started < float(child.stdout)
    # This test process started more than a second before its child (imports alone take that).
    assert iso_time(started) < iso_time(float(child.stdout))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OBSKIT_VCS_REVISION": "own", "GITHUB_SHA": "gh"}, "own"),
        ({"GITHUB_SHA": "f00d"}, "f00d"),
        ({"CI_COMMIT_SHA": "beef"}, "beef"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "vcs.ref.head.revision=cafe"}, "cafe"),
        ({}, None),
    ],
)
def test_vcs_revision_sources(environ: dict[str, str], expected: str | None) -> None:
    """The revision comes from obskit's variable, else the CI's, else the resource attributes."""
    assert expected == load_settings({}, environ).vcs_revision


def test_version_falls_back_to_the_distribution_metadata() -> None:
    """Without service_version, a service named like an installed distribution reports that
    distribution's version, and says where it came from."""
    settings = load_settings({"service_name": "structlog"}, {})
    assert importlib.metadata.version("structlog") == settings.service_version
    assert "distribution metadata (structlog)" == settings.sources["service_version"]
    assert "0.0.0" == load_settings({"service_name": "no-such-distribution"}, {}).service_version
    given = load_settings({"service_name": "structlog", "service_version": "2.0"}, {})
    assert "2.0" == given.service_version


def test_revision_is_on_the_trace_resource() -> None:
    """Spans carry the revision as the semantic-convention resource attribute."""
    settings = load_settings({"service_name": "s", "vcs_revision": "abc"}, {})
    assert "abc" == identity(settings).resource_attributes()["vcs.ref.head.revision"]
    assert "vcs.ref.head.revision" not in identity(load_settings({}, {})).resource_attributes()


def test_family_cap_folds_new_label_sets() -> None:
    """Past its cap a family folds new label sets into one __other__ child, counted."""
    registry = CollectorRegistry()
    store = Store(max_children=3)
    registry.register(store)
    family = store.counter("jobs", "Jobs.", ["queue"])
    for i in range(10):
        family.labels(f"q{i}").inc()
    assert 1.0 == registry.get_sample_value("jobs_total", {"queue": "q2"})
    assert 7.0 == registry.get_sample_value("jobs_total", {"queue": "__other__"})
    assert 7.0 == registry.get_sample_value("obskit_label_overflow_total", {"label": "jobs"})


def test_forked_child_starts_from_zero() -> None:
    """After a fork (simulated) the child's in-memory counts start afresh; decorators rebind."""

    @obskit.red(name="forked")
    def job() -> None:
        return None

    labels = {"function": "forked", "module": __name__, "result": "ok", "error_type": ""}
    with obskit.testing.isolated() as cap:
        job()
        job()
        assert 2.0 == cap.sample("obskit_function_calls_total", labels)
        _runtime._after_fork_in_child()
        job()
        assert 1.0 == cap.sample("obskit_function_calls_total", labels)


def test_explicit_registry_equal_to_runtime_registry_shares_the_store() -> None:
    """registry= naming the runtime's own registry records there once, without a duplicate."""
    registry = CollectorRegistry()

    @obskit.red(name="shared", registry=registry)
    def job() -> None:
        return None

    with obskit.testing.isolated(registry=registry) as cap:
        job()
        labels = {"function": "shared", "module": __name__, "result": "ok", "error_type": ""}
        assert 1.0 == cap.sample("obskit_function_calls_total", labels)
        assert 1 == generate_latest(registry).decode().count("# TYPE obskit_function_calls_total")


def test_metrics_off_leaves_no_component() -> None:
    """With metrics=False nothing is registered and the decorator still forwards calls."""

    @obskit.red
    def job() -> int:
        return 7

    with obskit.testing.isolated(metrics=False, tracing=False) as cap:
        assert _live.metrics() is None
        assert 7 == job()
        assert b"obskit_function" not in generate_latest(cap.registry)


@pytest.mark.prometheus
def test_promtool_accepts_function_families_with_static_labels() -> None:
    """promtool accepts the function families, also when only some series have static labels."""
    promtool = require_binary("promtool")

    @obskit.red(name="plain")
    def plain() -> None:
        return None

    @obskit.red(name="gold", labels={"tier": "gold"})
    def gold() -> None:
        raise KeyError

    with obskit.testing.isolated(tracing=False) as cap:
        plain()
        with pytest.raises(KeyError):
            gold()
        body = generate_latest(cap.registry)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert 0 == result.returncode, result.stdout.decode() + result.stderr.decode()
    assert b"" == result.stdout + result.stderr


def test_one_guard_per_label_shares_settings() -> None:
    """guard(label) returns one guard per label, configured by label_top_k and label_allow."""
    with obskit.testing.isolated(label_top_k=3, label_allow="vip") as cap:
        component = _live.metrics()
        assert component is not None
        users = component.guard("user_id")
        assert users is component.guard("user_id")
        assert component.tenant_guard is component.guard("tenant_id")
        assert 3 == users.top_k
        assert "vip" == users("vip")
        assert "__other__" == users("someone")
        assert 1.0 == cap.sample("obskit_label_overflow_total", {"label": "user_id"})
