"""`obskit slo rules` and `obskit slo test`: the rules load in promtool and pass their own
promtool tests, for Python, short-form and OpenSLO objectives; broken rules fail them."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import require_binary, subprocess_env
from obskit import slo
from obskit.slo import rules

pytestmark = pytest.mark.prometheus
TESTS = Path(__file__).parent
SPECS = {
    "short form": str(TESTS / "slo" / "shop.yml"),
    "OpenSLO": str(TESTS / "slo" / "openslo.yml"),
    "Python": "slo_objectives:ORDERS",
}


def _cli(*args: str, cwd: Path = TESTS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", "slo", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=170)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`obskit slo test` output (rules and tests) for each kind of declaration."""
    out = {}
    for kind, spec in SPECS.items():
        directory = tmp_path_factory.mktemp(kind.replace(" ", "-"))
        result = _cli("test", spec, "-o", str(directory))
        assert 0 == result.returncode, result.stderr
        out[kind] = directory
    return out


@pytest.mark.timeout(240)
def test_generated_promtool_tests_pass(written: dict[str, Path]) -> None:
    """Each declaration's rules pass `promtool check rules` and every generated test."""
    require_binary("promtool")

    def check(directory: Path) -> tuple[int, str, int, str]:
        checked = _promtool("check", "rules", "--lint-fatal", "slo-rules.yml", cwd=directory)
        tested = _promtool("test", "rules", "slo-rules.test.yml", cwd=directory)
        return (
            checked.returncode,
            checked.stdout + checked.stderr,
            tested.returncode,
            (tested.stdout + tested.stderr),
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(written, pool.map(check, written.values()), strict=True))
    for kind, (check_rc, check_out, test_rc, test_out) in results.items():
        assert 0 == check_rc, f"{kind}: {check_out}"
        assert 0 == test_rc, f"{kind}: {test_out}"


def test_generated_tests_cover_every_behaviour(written: dict[str, Path]) -> None:
    """Each objective gets the burn, no-burn, resolve, zero-traffic and absent cases, plus the
    guard and the tenant case where it declares them."""
    tests = yaml.safe_load((written["short form"] / "slo-rules.test.yml").read_text())["tests"]
    names = [t["name"] for t in tests]
    for needle in [
        "checkout-availability: a burn of 15x pages on page-1h within 5m",
        "checkout-availability: a burn of 13x does not page on page-1h",
        "checkout-availability: page-1h resolves once errors stop",
        "checkout-availability: zero traffic never alerts",
        "checkout-availability: no series at all raises SLOMetricAbsent",
        "checkout-availability: fewer than 20 events in 1h never page",
        "checkout-availability: one burning tenant pages with its tenant_id",
        "products-latency: a burn of 14x pages on page-1h within 5m",  # 28d: 13.44 x 15/14.4
    ]:
        assert any(n.startswith(needle) for n in names), needle


@pytest.mark.timeout(120)
def test_broken_rules_fail_their_tests(written: dict[str, Path], tmp_path: Path) -> None:
    """The tests can fail: a page factor raised from 14.4 to 16 fails the x15 case, and a ratio
    without its zero-traffic fallback (a gap where 0 belongs) fails the zero-traffic case."""
    source = written["short form"]
    text = (source / "slo-rules.yml").read_text()
    suite = yaml.safe_load((source / "slo-rules.test.yml").read_text())

    def only(*names: str) -> None:
        kept = [t for t in suite["tests"] if any(n in t["name"] for n in names)]
        assert kept
        (tmp_path / "slo-rules.test.yml").write_text(yaml.safe_dump({**suite, "tests": kept}))

    assert "/ 0.001 > 14.4\n" in text
    (tmp_path / "slo-rules.yml").write_text(text.replace("/ 0.001 > 14.4\n", "/ 0.001 > 16\n"))
    only("checkout-availability: a burn of 15x")
    failed = _promtool("test", "rules", "slo-rules.test.yml", cwd=tmp_path)
    assert 1 == failed.returncode
    assert 'alertname="SLOBurn"' in failed.stdout + failed.stderr

    guard = ' or 0 * slo:sli_total:rate5m{slo="checkout-availability"}'
    assert guard in text
    (tmp_path / "slo-rules.yml").write_text(text.replace(guard, ""))
    only("checkout-availability: zero traffic")
    failed = _promtool("test", "rules", "slo-rules.test.yml", cwd=tmp_path)
    assert 1 == failed.returncode
    assert "ratio_rate5m" in failed.stdout + failed.stderr  # the zero-traffic ratio is a gap


def test_alerts_carry_the_promised_labels_and_annotations() -> None:
    """SLOBurn has slo, severity, long/short window and owner; annotations have a summary with
    burn and budget, runbook_url and the dashboard link; thresholds are exact decimals."""
    sets = slo.load(TESTS / "slo" / "shop.yml")
    data = yaml.safe_load(rules.render(sets))
    alerts = [r for g in data["groups"] for r in g["rules"] if r.get("alert") == "SLOBurn"]
    first = alerts[0]
    assert {
        "slo": "checkout-availability",
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
        "owner": "payments",
    } == first["labels"]
    assert "{{ $labels.tenant_id }}" in first["annotations"]["summary"]
    assert "slo:error_budget:remaining" in first["annotations"]["summary"]
    assert (
        "https://runbooks.example.com/slo/checkout-availability.md"
        == (first["annotations"]["runbook_url"])
    )
    assert first["annotations"]["dashboard"].startswith("https://grafana.example.com/d/")
    latency = [a for a in alerts if a["labels"]["slo"] == "products-latency"]
    assert ["13.44", "5.6", "2.8"] == [a["expr"].split("> ")[1].split()[0] for a in latency[:3]]
    assert ["page", "page", "ticket", "ticket"] == [a["labels"]["severity"] for a in latency]


def test_saturation_tickets_and_pages_only_with_burn() -> None:
    """Resource signals are tickets; their page variant requires a firing SLOBurn page."""
    data = yaml.safe_load(rules.render(slo.load(TESTS / "slo" / "shop.yml")))
    signals = [
        r for g in data["groups"] for r in g["rules"] if r.get("alert") == "ResourceSaturation"
    ]
    assert {"cpu_throttling", "event_loop_lag", "pool_wait"} == {
        r["labels"]["signal"] for r in signals
    }
    for rule in signals:
        if rule["labels"]["severity"] == "page":
            assert 'ALERTS{alertname="SLOBurn",alertstate="firing",severity="page"' in rule["expr"]
        else:
            assert "ticket" == rule["labels"]["severity"]
            assert "SLOBurn" not in rule["expr"]


def test_cli_reports_a_bad_spec_and_writes_to_stdout(tmp_path: Path) -> None:
    """A bad SPEC exits 2 with the reason; a good one prints the rule file."""
    bad = tmp_path / "bad.yml"
    bad.write_text("apiVersion: obskit/v2\n")
    result = _cli("rules", str(bad))
    assert 2 == result.returncode
    assert "apiVersion is openslo/v1" in result.stderr
    good = _cli("rules", SPECS["Python"])
    assert 0 == good.returncode, good.stderr
    assert "slo:orders-success:rates" in good.stdout
