"""The documentation builds strictly, covers every public name and matches the settings table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import obskit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_configuration_reference_matches_code() -> None:
    """docs/configuration.md's table is exactly what SPECS generates (no drift)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_reference
    finally:
        sys.path.pop(0)
    text = (DOCS / "configuration.md").read_text()
    assert config_reference.render(text) == text, "run scripts/config_reference.py"


def test_every_public_name_is_documented() -> None:
    """Each name in obskit.__all__ appears in the documentation."""
    text = "\n".join(path.read_text() for path in DOCS.rglob("*.md"))
    missing = [name for name in obskit.__all__ if f"obskit.{name}" not in text]
    assert [] == missing


def test_mkdocs_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: no broken link, no missing page."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == result.returncode, result.stderr
