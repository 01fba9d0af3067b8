"""OTEL_SDK_DISABLED=true makes obskit a harmless no-op that still lets the application run."""

from __future__ import annotations

import logging

import pytest

import obskit
from obskit import _runtime


def test_disabled_wires_nothing_and_app_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disabled: no root handler added, no components, and the public API still works."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    handlers_before = list(logging.getLogger().handlers)
    obskit.init(service_name="svc")
    runtime = _runtime.current()
    assert runtime is not None
    assert runtime.disabled
    assert {} == runtime.components
    assert handlers_before == logging.getLogger().handlers
    with obskit.bound(tenant_id="t"):
        assert "t" == obskit.get_context()["tenant_id"]
    obskit.shutdown()
