"""mypy sees through @obskit.red: parameters and return types are kept (ParamSpec)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SNIPPET = textwrap.dedent(
    """
    import obskit

    @obskit.red
    def price(item: str, qty: int = 1) -> float:
        return 1.0 * qty

    @obskit.red(name="fetch")
    async def fetch(url: str) -> bytes:
        return b""

    reveal_type(price)
    reveal_type(fetch)
    total: float = price("apple", qty=2)
    price(3)
    """
)


def test_mypy_keeps_signatures(tmp_path: Path) -> None:
    """mypy reveals the original signatures and rejects a call with a wrong argument type."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            "/dev/null",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout.replace("builtins.", "")  # mypy versions differ in qualifying builtins
    assert "def (item: str, qty: int =) -> float" in out, out
    assert "def (url: str) -> typing.Coroutine[Any, Any, bytes]" in out, out
    assert 'Argument 1 to "price" has incompatible type "int"; expected "str"' in out, out
    assert 1 == out.count("error:"), out
