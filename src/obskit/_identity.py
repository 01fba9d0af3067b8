"""Who is reporting: the one source of service and obskit identity for every signal.

``obskit_build_info`` (metrics) and the OpenTelemetry resource (traces) both read
:func:`identity`, so a dashboard and a trace never disagree about a service's version.

The version is ``service_version`` when set, else the version of the installed distribution
named like the service (:func:`distribution_version`), else ``0.0.0``; the VCS revision is the
``vcs_revision`` setting, which also reads the usual CI variables (``GITHUB_SHA``,
``CI_COMMIT_SHA``, ...). :func:`process_start_time` is when this service instance started, so
that ``obskit_build_info`` shows a restart as well as a version change.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from obskit._config import Settings

__all__ = [
    "DISTRIBUTION",
    "OBSKIT_VERSION",
    "Identity",
    "distribution_version",
    "identity",
    "instance_id",
    "iso_time",
    "process_start_time",
]

# The name obskit is installed under (``pip install obskit-signals``); the import name is
# ``obskit``. The name ``obskit`` on the package index belongs to an unrelated project.
DISTRIBUTION = "obskit-signals"

try:
    OBSKIT_VERSION = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree without installation
    OBSKIT_VERSION = "0.0.0+unknown"

# When obskit was first imported: the start of a process whose start the OS does not tell.
_IMPORTED_AT = time.time()


@dataclasses.dataclass(frozen=True)
class Identity:
    """Service name, version and environment, with obskit's and Python's versions."""

    service_name: str
    service_version: str
    environment: str
    vcs_revision: str = ""
    obskit_version: str = OBSKIT_VERSION
    python_version: str = dataclasses.field(default_factory=platform.python_version)

    def resource_attributes(self) -> dict[str, str]:
        """The OpenTelemetry resource attributes these stand for (semantic-convention keys)."""
        attributes = {
            "service.name": self.service_name,
            "service.version": self.service_version,
            "deployment.environment.name": self.environment,
            "telemetry.distro.name": "obskit",
            "telemetry.distro.version": self.obskit_version,
        }
        if self.vcs_revision:
            attributes["vcs.ref.head.revision"] = self.vcs_revision
        return attributes


def identity(settings: Settings) -> Identity:
    """The identity the validated ``settings`` describe."""
    return Identity(
        service_name=settings.service_name,
        service_version=settings.service_version,
        environment=settings.environment,
        vcs_revision=settings.vcs_revision or "",
    )


_instance: tuple[int, str] = (0, "")


def instance_id() -> str:
    """This process's ``service.instance.id``: made once per process, kept across re-``init()``.

    A forked child (a gunicorn or uvicorn worker) makes its own, so that every worker is one
    instance, also when the application was loaded before the fork (``--preload``).
    """
    global _instance
    pid = os.getpid()
    made = _instance
    if made[0] != pid:
        made = _instance = (pid, str(uuid.uuid4()))
    return made[1]


def distribution_version(name: str) -> str | None:
    """The version of the installed distribution called ``name`` (the application's own, when
    the service is named after it), or None when there is none."""
    if not name or name == "unknown_service":
        return None
    try:
        found = version(name)
    except (PackageNotFoundError, ValueError):
        return None
    return found or None


def process_start_time(pid: int | None = None) -> float:
    """When process ``pid`` (default: this one) started, in seconds since the epoch.

    Read from ``/proc`` (boot time plus the process' start offset); where there is no procfs,
    this process' start is taken as the moment obskit was first imported.
    """
    try:
        with open(f"/proc/{pid or os.getpid()}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return _IMPORTED_AT


def iso_time(seconds: float) -> str:
    """``seconds`` since the epoch as ISO 8601 UTC to the second (``2026-05-04T12:00:00Z``)."""
    moment = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
