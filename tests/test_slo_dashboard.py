"""`obskit slo dashboard`: valid against the pinned Grafana build's JSON schema, every query
parsed by promtool, and the panels an on-call needs (budget, burn, SLI, RED, saturation,
deploy annotations)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import subprocess_env
from obskit import slo
from obskit.slo import dashboard
from slo_support import check_promql

TESTS = Path(__file__).parent
SCHEMAS = TESTS / "schemas" / "grafana-11.6"
# grafana-foundation-sdk needs Python 3.11 (the slo extra installs it only there).
pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="the Grafana SDK needs 3.11")
PINNED = "1769699379!11.6.0"


def _schema(name: str, definition: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.jsonschema.json").read_text())
    if definition is not None:
        schema = {**schema, "$ref": f"#/definitions/{definition}"}
    return schema


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    return [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(value)
    ]


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    """The dashboards of the short-form shop and of the Python orders objectives."""
    sys.path.insert(0, str(TESTS))
    try:
        return {
            "shop": dashboard.build(slo.load(TESTS / "slo" / "shop.yml")),
            "orders": dashboard.build(slo.load("slo_objectives:ORDERS")),
        }
    finally:
        sys.path.remove(str(TESTS))


def test_sdk_is_the_build_the_schemas_come_from() -> None:
    """The installed grafana-foundation-sdk is the pinned 11.6 build the schemas were taken from."""
    assert PINNED == importlib.metadata.version("grafana-foundation-sdk")
    assert PINNED in (SCHEMAS / "README.md").read_text()


def test_dashboards_validate_against_the_pinned_schema(boards: dict[str, dict[str, Any]]) -> None:
    """Dashboard, every panel's options and every Prometheus query follow the 11.6 schemas."""
    for name, board in boards.items():
        assert [] == _errors(_schema("dashboard"), board), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            options = _schema(panel["type"], "Options")
            assert [] == _errors(options, panel["options"]), (name, panel["title"])
            for target in panel["targets"]:
                assert [] == _errors(_schema("prometheus"), target), (name, panel["title"])


def test_schema_validation_can_fail(boards: dict[str, dict[str, Any]]) -> None:
    """The validation is real: a key this build does not know, or a null threshold, fails."""
    board = json.loads(json.dumps(boards["shop"]))
    board["panels"][1]["pluginVersionTypo"] = "1"
    assert _errors(_schema("dashboard"), board)
    board = json.loads(json.dumps(boards["shop"]))
    board["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] = None
    assert _errors(_schema("dashboard"), board)


def _expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    # Grafana's variables, as Grafana would substitute them.
    return [e.replace("$__rate_interval", "5m").replace("$tenant", ".*") for e in exprs]


@pytest.mark.prometheus
def test_every_query_parses_in_promtool(boards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """promtool parses every panel query and the deploy annotation query."""
    exprs = [e for board in boards.values() for e in _expressions(board)]
    assert len(exprs) > 20
    check_promql(exprs, tmp_path)


def test_panels_answer_slo_questions(boards: dict[str, dict[str, Any]]) -> None:
    """Budget left, burn by window with the tier factors as thresholds, the SLI against its
    target, RED by route and tenant with exemplars, saturation, and deploy annotations."""
    board = boards["shop"]
    titles = [p["title"] for p in board["panels"]]
    for title in (
        "Error budget left",
        "Burn rate by window",
        "SLI",
        "p99 latency by route and tenant",
        "Error ratio by route and tenant",
    ):
        assert title in titles  # fmt: skip
    assert any("throttled" in t for t in titles)
    burn = next(p for p in board["panels"] if p["title"] == "Burn rate by window")
    steps = [s["value"] for s in burn["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert [0.0, 1.0, 3.0, 6.0, 14.4] == steps
    assert {"5m", "1h", "6h", "3d"} <= {t["legendFormat"].split()[-1] for t in burn["targets"]}
    p99 = next(p for p in board["panels"] if p["title"] == "p99 latency by route and tenant")
    assert p99["targets"][0]["exemplar"] is True
    names = [a["name"] for a in board["annotations"]["list"]]
    assert ["Deploys (new service_version)", "Deploy markers"] == names
    assert "tenant" == board["templating"]["list"][0]["name"]


def test_cli_writes_the_dashboard(tmp_path: Path) -> None:
    """`obskit slo dashboard SPEC -o FILE` writes the JSON, uid from the service."""
    out = tmp_path / "dash.json"
    result = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "slo", "dashboard", str(TESTS / "slo" / "shop.yml"),
         "-o", str(out)],
        env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert 0 == result.returncode, result.stderr
    assert "obskit-slo-shop" == json.loads(out.read_text())["uid"]
