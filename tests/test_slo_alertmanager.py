"""`obskit slo alertmanager` in a real Alertmanager: routing by owner and severity (amtool), and
the inhibitions (faster tier mutes slower, page mutes ticket) on alerts posted to its API."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import require_binary
from obskit import slo
from obskit._yaml import dump
from obskit.slo import alertmanager
from prometheus_support import free_port

pytestmark = pytest.mark.prometheus
SPEC = Path(__file__).parent / "slo" / "shop.yml"
RECEIVERS = {("payments", "page"): "payments-pager"}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated fragment, as a complete Alertmanager configuration file."""
    path = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    path.write_text(dump(alertmanager.config(slo.load(SPEC), RECEIVERS)))
    return path


@contextlib.contextmanager
def _alertmanager(config: Path) -> Iterator[str]:
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    log = (config.parent / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={config.parent / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (config.parent / "alertmanager.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "alertmanager did not become ready"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _post(base: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert 200 == response.status


def _states(base: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as response:
        alerts = json.loads(response.read())
    return {a["labels"]["id"]: a["status"]["state"] for a in alerts}


def _wait(base: str, expected: dict[str, str], timeout: float = 20) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = _states(base)
        if all(states.get(k) == v for k, v in expected.items()):
            return states
        time.sleep(0.3)
    return states


def _alert(id_: str, ends: datetime | None = None, **labels: str) -> dict[str, Any]:
    alert: dict[str, Any] = {"labels": {"id": id_, **labels}, "annotations": {"summary": id_}}
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    return alert


def _burn(id_: str, long: str, severity: str, tenant: str = "a", **extra: str) -> dict[str, Any]:
    return _alert(
        id_,
        alertname="SLOBurn",
        slo=extra.pop("slo", "checkout-availability"),
        owner=extra.pop("owner", "payments"),
        severity=severity,
        long_window=long,
        short_window="5m",
        tenant_id=tenant,
        **extra,
    )


@pytest.mark.timeout(90)
def test_inhibitions_in_a_real_alertmanager(config_file: Path) -> None:
    """A faster tier mutes slower ones of its objective and tenant, a page mutes tickets, other
    tenants and signals stay active, and the muted tier comes back when the faster resolves."""
    with _alertmanager(config_file) as base:
        _post(
            base,
            [
                _burn("fast", "1h", "page"),
                _burn("slow-page", "6h", "page"),
                _burn("ticket", "1d", "ticket"),
                _burn("other-tenant", "6h", "page", tenant="b"),
                _burn("other-slo", "3d", "ticket", slo="products-latency", owner="catalog"),
                _alert("cpu-ticket", alertname="ResourceSaturation", signal="cpu_throttling",
                       severity="ticket", owner="payments"),
                _alert("cpu-page", alertname="ResourceSaturation", signal="cpu_throttling",
                       severity="page", owner="payments"),
                _alert("pool-ticket", alertname="ResourceSaturation", signal="pool_wait",
                       severity="ticket", owner="payments"),
            ],
        )  # fmt: skip
        expected = {
            "fast": "active",
            "slow-page": "suppressed",
            "ticket": "suppressed",
            "other-tenant": "active",
            "other-slo": "active",
            "cpu-ticket": "suppressed",
            "cpu-page": "active",
            "pool-ticket": "active",
        }
        assert expected == {k: v for k, v in _wait(base, expected).items() if k in expected}
        ended = datetime.now(timezone.utc) - timedelta(seconds=1)
        resolved = _burn("fast", "1h", "page")
        resolved["endsAt"] = ended.isoformat()
        _post(base, [resolved])
        after = _wait(base, {"slow-page": "active"})
        assert "active" == after.get("slow-page")
        assert "suppressed" == after.get("ticket")  # still muted by the 6h page


def test_routes_by_owner_and_severity(config_file: Path) -> None:
    """amtool: pages and tickets of each owner reach their receivers, named or default."""
    amtool = require_binary("amtool")
    cases = [
        ("payments-pager", ["owner=payments", "severity=page"]),
        ("payments-ticket", ["owner=payments", "severity=ticket"]),
        ("catalog-page", ["owner=catalog", "severity=page"]),
        ("default", ["owner=nobody", "severity=page"]),
    ]
    for receiver, labels in cases:
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config_file}",
             f"--verify.receivers={receiver}", "alertname=SLOBurn", "slo=x", *labels],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert 0 == result.returncode, (receiver, result.stdout, result.stderr)
    wrong = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config_file}",
         "--verify.receivers=payments-ticket", "alertname=SLOBurn", "owner=payments",
         "severity=page"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert 1 == wrong.returncode


def test_receiver_options_are_checked() -> None:
    """--receiver values are OWNER=NAME or OWNER:SEVERITY=NAME; anything else is refused."""
    assert {("a", "page"): "x", ("a", "ticket"): "x", ("b", "ticket"): "y"} == (
        alertmanager.parse_receivers(["a=x", "b:ticket=y"])
    )
    with pytest.raises(slo.SpecError, match="OWNER:SEVERITY=NAME"):
        alertmanager.parse_receivers(["a:sev=x"])
