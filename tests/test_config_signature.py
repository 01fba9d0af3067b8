"""init() has a typed keyword-only signature in step with SPECS, and mistyped keywords get help."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

import obskit
from obskit._config import OBJECTS, SPECS, ConfigError

ROOT = Path(__file__).resolve().parents[1]
MYPY = [sys.executable, "-m", "mypy", "--strict"]


def _config_reference() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_reference
    finally:
        sys.path.pop(0)
    return config_reference


def test_init_takes_every_setting_by_keyword_only() -> None:
    """Each setting and object of the table is a keyword-only parameter of obskit.init()."""
    params = inspect.signature(obskit.init).parameters
    named = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [spec.name for spec in SPECS] + [obj.name for obj in OBJECTS] == named
    assert [inspect.Parameter.VAR_KEYWORD] == [
        p.kind for p in params.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    assert all(p.default is None for name, p in params.items() if name in named)


def test_init_parameters_are_typed_and_documented() -> None:
    """Every parameter has the type its parser accepts and its description in the docstring."""
    params = inspect.signature(obskit.init).parameters
    doc = " ".join((obskit.init.__doc__ or "").split())
    for spec in SPECS:
        assert _normal(f"{spec.kind} | None") == params[spec.name].annotation, spec.name
        assert f"{spec.name}: {' '.join(spec.doc.split())}" in doc, spec.name
    for obj in OBJECTS:
        assert _normal(f"{obj.kind} | None") == params[obj.name].annotation, obj.name


def _normal(annotation: str) -> str:
    """An annotation as the compiler stores it under ``from __future__ import annotations``."""
    return ast.unparse(ast.parse(annotation, mode="eval"))


def test_generated_signature_is_up_to_date() -> None:
    """src/obskit/_facade.py holds exactly what scripts/config_reference.py generates."""
    text = (ROOT / "src" / "obskit" / "_facade.py").read_text()
    assert _config_reference().render_facade(text) == text, "run scripts/config_reference.py"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_mypy_checks_callers_of_init(tmp_path: Path) -> None:
    """mypy rejects a mistyped keyword, a wrong choice and a wrong type, and accepts good calls."""
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import obskit\n"
        "from prometheus_client import CollectorRegistry\n"
        'obskit.init(service_name="a", log_level="debug", metrics_port=9100)\n'
        'obskit.init(registry=CollectorRegistry(), request_id_headers=["x-request-id"])\n'
        'obskit.init(service="a")\n'
        'obskit.init(log_level="loud")\n'
        'obskit.init(metrics_port="9100")\n'
    )
    result = subprocess.run(
        [*MYPY, "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(caller)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
    )
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [5, 6, 7] == [int(line.split(":")[1]) for line in lines], result.stdout
    assert '"service"' in lines[0]
    assert "log_level" in lines[1]
    assert "metrics_port" in lines[2]


@pytest.mark.parametrize(
    ("keyword", "suggestion"),
    [
        ("service", "service_name"),
        ("log_levle", "log_level"),
        ("sample_ratio", "baseline_ratio"),
        ("metric_port", "metrics_port"),
        ("tenant_headers", "tenant_header"),
    ],
)
def test_mistyped_keyword_names_the_nearest_setting(keyword: str, suggestion: str) -> None:
    """An unknown keyword is a ConfigError suggesting the setting it most likely meant."""
    with pytest.raises(ConfigError) as info:
        cast(Any, obskit.init)(**{keyword: "x"})
    assert f"unknown setting {keyword!r} — did you mean {suggestion!r}?" in str(info.value)


def test_unknown_keyword_without_a_near_one_lists_the_settings() -> None:
    """A keyword like no setting gets the list of known ones instead of a guess."""
    with pytest.raises(ConfigError, match="unknown setting 'zzz'; known: access_log, "):
        cast(Any, obskit.init)(zzz=1)


def test_mistyped_environment_variable_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """OBSKIT_LOG_LEVLE is not silently ignored: init() logs which variable was meant."""
    import obskit.testing

    monkeypatch.setenv("OBSKIT_LOG_LEVLE", "debug")
    with obskit.testing.capture_logs() as lines:
        obskit.init(registry=CollectorRegistry(), log_stream="stderr")
    notices = [line["event"] for line in lines if "OBSKIT_LOG_LEVLE" in line["event"]]
    assert [
        "obskit: environment variable OBSKIT_LOG_LEVLE is not an obskit setting — did you "
        "mean OBSKIT_LOG_LEVEL?"
    ] == notices
