"""Helpers for the SLO tests: check PromQL expressions with the real promtool."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from conftest import require_binary
from obskit._yaml import dump


def check_promql(expressions: Sequence[str], workdir: Path) -> None:
    """Fail unless promtool parses every expression (each wrapped in a recording rule)."""
    promtool = require_binary("promtool")
    rules = [{"record": f"check:expr_{k}", "expr": e} for k, e in enumerate(expressions)]
    path = workdir / "check-promql.yml"
    path.write_text(dump({"groups": [{"name": "check", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert 0 == result.returncode, result.stdout + result.stderr
