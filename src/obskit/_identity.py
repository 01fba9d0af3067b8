"""Who is reporting: the one source of service and obskit identity for every signal.

``obskit_build_info`` (metrics) and the OpenTelemetry resource (traces) both read
:func:`identity`, so a dashboard and a trace never disagree about a service's version.
"""

from __future__ import annotations

import dataclasses
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from obskit._config import Settings

__all__ = ["DISTRIBUTION", "OBSKIT_VERSION", "Identity", "identity"]

# The name obskit is installed under (``pip install obskit-signals``); the import name is
# ``obskit``. The name ``obskit`` on the package index belongs to an unrelated project.
DISTRIBUTION = "obskit-signals"

try:
    OBSKIT_VERSION = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree without installation
    OBSKIT_VERSION = "0.0.0+unknown"


@dataclasses.dataclass(frozen=True)
class Identity:
    """Service name, version and environment, with obskit's and Python's versions."""

    service_name: str
    service_version: str
    environment: str
    obskit_version: str = OBSKIT_VERSION
    python_version: str = dataclasses.field(default_factory=platform.python_version)

    def resource_attributes(self) -> dict[str, str]:
        """The OpenTelemetry resource attributes these stand for (semantic-convention keys)."""
        return {
            "service.name": self.service_name,
            "service.version": self.service_version,
            "deployment.environment.name": self.environment,
            "telemetry.distro.name": "obskit",
            "telemetry.distro.version": self.obskit_version,
        }


def identity(settings: Settings) -> Identity:
    """The identity the validated ``settings`` describe."""
    return Identity(
        service_name=settings.service_name,
        service_version=settings.service_version,
        environment=settings.environment,
    )
