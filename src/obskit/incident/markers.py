"""Deploy markers: a deployment recorded where the people debugging the next incident look.

::

    obskit.mark_deploy("1.4.2", "prod", description="checkout v2 behind a flag", url=ci_url)

records a :class:`Deployment` as a structured log event ``deployment.marked`` and sends it to
every destination configured (:mod:`obskit.incident.destinations`: a Grafana annotation, a
Sentry release deploy, a Datadog deployment event). A marker never fails a deploy: the
destinations are called at once, each bounded by ``timeout`` seconds in total (a destination
that hangs costs that, one that refuses less), and whatever fails is returned, logged as a
warning (``deployment.marker_failed``) and counted in
``obskit_deploy_markers_total{destination, result}`` — never raised. Calls are obskit's own
work: no span, metric or propagation header (:func:`obskit._selfcalls.quietly`).

Unset fields come from the configuration: the service name, version, environment and revision
of :func:`obskit.init` (or of the environment variables it reads, when it was not called).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from obskit import _guard, _live
from obskit._selfcalls import quietly
from obskit._selfhttp import HttpError, request
from obskit._times import parse_time
from obskit.incident.destinations import Destination, from_environment
from obskit.metrics.catalogue import DEPLOY_MARKERS

__all__ = ["EVENT", "FAILED_EVENT", "DeployMark", "Deployment", "Outcome", "mark_deploy"]

EVENT: Final = "deployment.marked"
FAILED_EVENT: Final = "deployment.marker_failed"
BAD_ARGUMENT_EVENT: Final = "deployment.marker_argument_replaced"
LOGGER: Final = "obskit.deploy"
DEFAULT_TIMEOUT_S: Final = 5.0
_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]+")


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One deployment: what went where, when (seconds since the epoch), and from which source."""

    service: str
    version: str
    environment: str
    started: float
    finished: float
    revision: str = ""
    repository_url: str = ""
    description: str = ""
    url: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", deployment_id(self))

    @staticmethod
    def iso(seconds: float) -> str:
        """ISO 8601 UTC with milliseconds, as Sentry and the log line write times."""
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def summary(self) -> str:
        """One line for humans: ``shop 1.4.2 deployed to prod (abc1234): description``."""
        text = f"{self.service} {self.version} deployed to {self.environment}"
        if self.revision:
            text += f" ({self.revision[:12]})"
        if self.description:
            text += f": {self.description}"
        if self.url:
            text += f" {self.url}"
        return text

    def fields(self) -> dict[str, Any]:
        """The log event's fields (OpenTelemetry attribute names where one exists)."""
        fields: dict[str, Any] = {
            "service.name": self.service,
            "service.version": self.version,
            "deployment.environment.name": self.environment,
            "deployment.id": self.id,
            "deployment.started": self.iso(self.started),
            "deployment.finished": self.iso(self.finished),
        }
        optional = {
            "vcs.ref.head.revision": self.revision,
            "vcs.repository.url.full": self.repository_url,
            "deployment.description": self.description,
            "deployment.url": self.url,
        }
        fields.update({k: v for k, v in optional.items() if v})
        return fields


def deployment_id(deployment: Deployment) -> str:
    """``<service>-<version>-<environment>-<finished>``, in the characters Datadog accepts
    (letters, digits, ``-_.:``) and its 16 to 128 characters."""
    raw = f"{deployment.service}-{deployment.version}-{deployment.environment}"
    text = _ID_CHARS.sub("_", raw)[:110] + f"-{int(deployment.finished)}"
    return text.ljust(16, "0")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one destination answered: ``ok``, a short ``detail`` and how long it took."""

    destination: str
    ok: bool
    detail: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class DeployMark:
    """The deployment recorded and each destination's outcome."""

    deployment: Deployment
    outcomes: tuple[Outcome, ...]

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """The destinations that did not record it."""
        return tuple(o for o in self.outcomes if not o.ok)


def _defaults() -> dict[str, str]:
    """Service, version, environment and revision of the live configuration (or the
    environment's, before ``init()``)."""
    runtime = _live.current()
    if runtime is not None:
        settings = runtime.settings
    else:
        from obskit._config import load_settings

        try:
            settings = load_settings({})
        except ValueError:  # a bad variable is init()'s to report, not the marker's
            return {}
    return {
        "service": settings.service_name,
        "version": settings.service_version,
        "environment": settings.environment,
        "revision": settings.vcs_revision or "",
    }


def _send(destination: Destination, deployment: Deployment, timeout: float) -> Outcome:
    began = time.monotonic()
    try:
        call = destination.request(deployment)
        answer = request(
            call.method, call.url, body=call.body, headers=call.headers, timeout=timeout
        )
        detail, ok = destination.accepted(answer), True
    except HttpError as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # a destination's own bug must not fail the deploy either
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Outcome(destination.name, ok, detail, time.monotonic() - began)


def send_all(
    destinations: Sequence[Destination], deployment: Deployment, timeout: float
) -> list[Outcome]:
    """Send to every destination at once; each gets ``timeout`` seconds in all, after which
    it counts as failed and its thread (a daemon) is left to its socket timeout."""
    results: dict[int, Outcome] = {}

    @quietly
    def run(index: int, destination: Destination) -> None:
        results[index] = _send(destination, deployment, timeout)

    threads = [
        threading.Thread(target=run, args=(k, d), name=f"obskit-marker-{d.name}", daemon=True)
        for k, d in enumerate(destinations)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, began + timeout - time.monotonic()))
    waited = time.monotonic() - began
    return [
        results.get(k) or Outcome(d.name, False, f"no answer within {timeout:g} s", waited)
        for k, d in enumerate(destinations)
    ]


def _count(outcomes: Sequence[Outcome]) -> None:
    """Count each outcome in the live runtime's ``obskit_deploy_markers_total``."""
    component = _live.metrics()
    if component is None:
        return
    family = component.store.counter(
        DEPLOY_MARKERS.name, DEPLOY_MARKERS.help, DEPLOY_MARKERS.labels
    )
    for outcome in outcomes:
        family.labels(outcome.destination, "sent" if outcome.ok else "failed").inc()


def _moment(value: float | None, name: str, log: Any) -> float | None:
    """``value`` if it is a time obskit can write (1970 to 9999), else None (now), said in a
    warning."""
    if value is None:
        return None
    try:
        return parse_time(repr(float(value)))
    except (TypeError, ValueError):
        log.warning(BAD_ARGUMENT_EVENT, argument=name, value=repr(value), used="now")
        return None


def mark_deploy(
    version: str | None = None,
    environment: str | None = None,
    *,
    description: str = "",
    url: str = "",
    service: str | None = None,
    revision: str | None = None,
    repository_url: str = "",
    started: float | None = None,
    finished: float | None = None,
    destinations: Sequence[Destination] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> DeployMark:
    """Record a deployment: a ``deployment.marked`` log event and each configured destination.

    ``version``, ``environment``, ``service`` and ``revision`` default to the configuration's;
    ``started`` / ``finished`` (seconds since the epoch) to now. ``destinations``: the marker
    APIs to call (default: those the environment configures, see
    :func:`obskit.incident.destinations.from_environment`). Never raises: failures are returned,
    logged as warnings and counted.
    """
    from obskit.logs import get_logger

    log = get_logger(LOGGER)
    problems: list[str] = []
    if destinations is None:
        found, problems = from_environment()
        destinations = found
    defaults = _defaults()
    now = time.time()
    # A time or timeout that cannot be used is replaced (and said), never raised: the deploy
    # goes on, and its marker is still written.
    started, finished = _moment(started, "started", log), _moment(finished, "finished", log)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        log.warning(
            BAD_ARGUMENT_EVENT, argument="timeout", value=repr(timeout), used=DEFAULT_TIMEOUT_S
        )
        timeout = DEFAULT_TIMEOUT_S
    deployment = Deployment(
        service=service or defaults.get("service", "unknown_service"),
        version=version or defaults.get("version", "0.0.0"),
        environment=environment or defaults.get("environment", "dev"),
        started=started if started is not None else (finished if finished is not None else now),
        finished=finished if finished is not None else now,
        revision=revision if revision is not None else defaults.get("revision", ""),
        repository_url=repository_url,
        description=description,
        url=url,
    )
    outcomes = [Outcome(p.split(":", 1)[0], False, p, 0.0) for p in problems]
    outcomes += send_all(list(destinations), deployment, timeout)
    mark = DeployMark(deployment, tuple(outcomes))
    try:
        _count(mark.outcomes)
        markers = {o.destination: ("sent" if o.ok else "failed") for o in mark.outcomes}
        log.info(EVENT, **deployment.fields(), **{"deployment.markers": markers})
        for failure in mark.failures:
            log.warning(FAILED_EVENT, destination=failure.destination, reason=failure.detail)
    except Exception as exc:
        _guard.report("incident.markers", exc)
    return mark
