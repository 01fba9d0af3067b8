"""`obskit slo runbooks`: one page per objective, at the URL its alerts link to, with the
meaning of each tier, queries that parse, the declared mitigations and the owner."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import subprocess_env
from obskit import slo
from obskit.slo import rules, runbooks
from slo_support import check_promql

SPEC = Path(__file__).parent / "slo" / "shop.yml"


def test_runbook_pages_match_the_alerts_links(tmp_path: Path) -> None:
    """`obskit slo runbooks -o DIR` writes <slo>.md for each objective; runbook_url ends in it."""
    result = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "slo", "runbooks", str(SPEC), "-o", str(tmp_path)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == result.returncode, result.stderr
    written = sorted(p.name for p in tmp_path.glob("*.md"))
    assert ["checkout-availability.md", "products-latency.md"] == written
    data = yaml.safe_load(rules.render(slo.load(SPEC)))
    links = {
        r["annotations"]["runbook_url"] for g in data["groups"] for r in g["rules"] if "alert" in r
        and "runbook_url" in r["annotations"]
    }  # fmt: skip
    assert {f"https://runbooks.example.com/slo/{name}" for name in written} == links


@pytest.mark.prometheus
def test_runbook_says_what_a_demanding_on_call_needs(tmp_path: Path) -> None:
    """Tier table with budget spent, RED/saturation queries that promtool parses, exemplars and
    correlation-id logs, the declared mitigations as a checklist, and the owner."""
    sets = slo.load(SPEC)
    text = runbooks.render(sets, sets.objectives[0])
    assert "| page-1h | page | 14.4x | 2% of the budget | 1h | 5m | 2.08 days |" in text
    for heading in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation", "## Owner"):
        assert heading in text
    assert "- [ ] roll back the last deploy" in text
    assert "- [ ] turn the flag new-checkout off" in text
    assert "**payments**" in text
    assert "query_exemplars" in text
    assert "correlation_id" in text
    queries = re.findall(r"```promql\n\s*(.+?)\n\s*```", text)
    assert len(queries) >= 8
    check_promql(queries, tmp_path)


def test_runbook_without_declared_mitigations_offers_the_usual_levers() -> None:
    """No mitigations declared: roll back, flag off, scale, degrade, marked as the usual ones."""
    sets = slo.load(SPEC)
    text = runbooks.render(sets, sets.objectives[1])
    assert "(none declared: the usual levers)" in text
    for lever in runbooks.USUAL_LEVERS:
        assert f"- [ ] {lever}" in text
