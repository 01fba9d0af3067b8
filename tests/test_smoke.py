"""The package imports and wires its logs."""

import obskit
import obskit.testing


def test_init_and_log_line() -> None:
    """A line logged after init() carries the service name and the event."""
    with obskit.testing.isolated(service_name="svc") as capture:
        obskit.get_logger("t").info("hello")
    assert ["hello"] == [line["event"] for line in capture.logs]
    assert "svc" == capture.logs[0]["service"]
