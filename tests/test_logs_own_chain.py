"""An application that owns its structlog configuration takes obskit's processors publicly."""

from __future__ import annotations

import io
import json

import pytest
import structlog

import obskit
import obskit.testing
from obskit.logs import REDACTED, processors


def test_processors_of_the_live_init_plug_into_a_users_chain() -> None:
    """After init(configure_logging=False), obskit.logs.processors() gives the chain the fields
    and redaction of that configuration, without reaching into obskit's runtime."""
    obskit.testing.reset()
    obskit.init(configure_logging=False, service_name="own")
    out = io.StringIO()
    structlog.configure(
        processors=[*processors(), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        with obskit.bound(tenant_id="t1"):
            structlog.get_logger().info("mine", password="x")
    finally:
        structlog.reset_defaults()
        obskit.testing.reset()
    line = json.loads(out.getvalue())
    assert ("own", "t1", REDACTED) == (line["service"], line["tenant_id"], line["password"])


def test_processors_before_init_say_what_is_missing() -> None:
    """Without a live init() there is no configuration to take: a clear error, at setup time."""
    obskit.testing.reset()
    with pytest.raises(RuntimeError, match=r"needs obskit\.init\(\) first"):
        processors()
