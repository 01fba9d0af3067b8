"""Where a deploy marker goes besides the log: Grafana, Sentry, Datadog.

Each destination turns a :class:`~obskit.incident.markers.Deployment` into one HTTP request
(:meth:`Destination.request`) and judges its answer; :mod:`obskit.incident.markers` sends them.
The request builders are pure, so the contract tests check each API's fields exactly:

- **Grafana** — ``POST <url>/api/annotations`` with ``text`` (required), ``time`` and
  ``timeEnd`` in epoch milliseconds, ``tags`` (``deploy``, ``service:<name>``,
  ``env:<environment>``, ``version:<version>``) and, when configured, ``dashboardUID``; a service
  account token as ``Authorization: Bearer``. It answers ``{"message": "Annotation added", "id"}``.
- **Sentry** — ``POST <url>/api/0/organizations/<org>/releases/<version>/deploys/`` with
  ``environment`` (required), ``name``, ``url``, ``dateStarted``, ``dateFinished`` (ISO 8601);
  the release must exist in Sentry (its version is the deployment's, or ``release``).
- **Datadog** — ``POST https://api.<site>/api/v2/dora/deployment`` with the ``DD-API-KEY``
  header and ``{"data": {"attributes": {...}}}``: ``service``, ``started_at``, ``finished_at``
  (epoch nanoseconds), ``env``, ``version``, ``id`` and, when both are known,
  ``git: {commit_sha, repository_url}``.

:func:`from_environment` builds the configured ones from environment variables (the names the
vendors' own tools read, where they have one); see ``docs/incidents.md``.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from obskit._selfhttp import Answer, HttpError, base_url

if TYPE_CHECKING:
    from obskit.incident.markers import Deployment

__all__ = [
    "Datadog",
    "Destination",
    "Grafana",
    "Request",
    "Sentry",
    "from_environment",
]


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request a destination sends (``headers`` may hold a secret: never log them)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: dict[str, Any]


class Destination:
    """A marker API: builds its request and says what its answer means."""

    name = "destination"

    def request(self, deployment: Deployment) -> Request:
        """The request that records ``deployment``."""
        raise NotImplementedError

    def accepted(self, answer: Answer) -> str:
        """A short description of a successful answer (HttpError when it is not one)."""
        return f"HTTP {answer.status}"


@dataclasses.dataclass(frozen=True)
class Grafana(Destination):
    """A Grafana annotation (``url``: Grafana's base URL; ``token``: a service account token)."""

    url: str
    token: str = ""
    dashboard_uid: str = ""
    name = "grafana"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", base_url(self.url, "the Grafana URL"))

    def request(self, deployment: Deployment) -> Request:
        body: dict[str, Any] = {
            "time": int(deployment.started * 1000),
            "timeEnd": int(deployment.finished * 1000),
            "tags": [
                "deploy",
                f"service:{deployment.service}",
                f"env:{deployment.environment}",
                f"version:{deployment.version}",
            ],
            "text": deployment.summary(),
        }
        if self.dashboard_uid:
            body["dashboardUID"] = self.dashboard_uid
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return Request("POST", f"{self.url}/api/annotations", headers, body)

    def accepted(self, answer: Answer) -> str:
        found = answer.json()
        if not isinstance(found, dict) or "id" not in found:
            raise HttpError(f"Grafana answered without an annotation id: {found!r}"[:300])
        return f"annotation {found['id']}"


@dataclasses.dataclass(frozen=True)
class Sentry(Destination):
    """A deploy of a Sentry release (``org``: the organization slug; ``token``: an auth
    token with ``project:releases``; ``release``: the release's version, default the
    deployment's)."""

    org: str
    token: str
    url: str = "https://sentry.io"
    release: str = ""
    name = "sentry"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", base_url(self.url, "the Sentry URL"))
        if not self.org:
            raise ValueError("the Sentry organization slug is empty")

    def request(self, deployment: Deployment) -> Request:
        org = urllib.parse.quote(self.org, safe="")
        version = urllib.parse.quote(self.release or deployment.version, safe="")
        body: dict[str, Any] = {
            "environment": deployment.environment,
            "name": f"{deployment.service} {deployment.version}",
            "dateStarted": deployment.iso(deployment.started),
            "dateFinished": deployment.iso(deployment.finished),
        }
        if deployment.url:
            body["url"] = deployment.url
        url = f"{self.url}/api/0/organizations/{org}/releases/{version}/deploys/"
        return Request("POST", url, {"Authorization": f"Bearer {self.token}"}, body)

    def accepted(self, answer: Answer) -> str:
        found = answer.json()
        ident = found.get("id") if isinstance(found, dict) else None
        return f"deploy {ident}" if ident is not None else f"HTTP {answer.status}"


@dataclasses.dataclass(frozen=True)
class Datadog(Destination):
    """A Datadog deployment event (DORA metrics); ``site`` as in ``DD_SITE``, or ``url`` (the
    API's base, e.g. a proxy)."""

    api_key: str
    site: str = "datadoghq.com"
    url: str = ""
    name = "datadog"

    def __post_init__(self) -> None:
        base = self.url or f"https://api.{self.site.strip().removeprefix('app.')}"
        object.__setattr__(self, "url", base_url(base, "the Datadog API URL"))
        if not self.api_key:
            raise ValueError("the Datadog API key is empty")

    def request(self, deployment: Deployment) -> Request:
        attributes: dict[str, Any] = {
            "service": deployment.service,
            "started_at": int(deployment.started * 1e9),
            "finished_at": int(deployment.finished * 1e9),
            "env": deployment.environment,
            "version": deployment.version,
            "id": deployment.id,
        }
        if deployment.revision and deployment.repository_url:
            attributes["git"] = {
                "commit_sha": deployment.revision,
                "repository_url": deployment.repository_url,
            }
        url = f"{self.url}/api/v2/dora/deployment"
        return Request(
            "POST", url, {"DD-API-KEY": self.api_key}, {"data": {"attributes": attributes}}
        )

    def accepted(self, answer: Answer) -> str:
        found = answer.json()
        data = found.get("data") if isinstance(found, dict) else None
        ident = data.get("id") if isinstance(data, dict) else None
        return f"deployment {ident}" if ident else f"HTTP {answer.status}"


def _first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""


def from_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Destination], list[str]]:
    """The destinations the environment configures, and a problem per misconfigured one.

    - Grafana: ``OBSKIT_GRAFANA_URL`` (or ``GRAFANA_URL``), ``OBSKIT_GRAFANA_TOKEN`` (or
      ``GRAFANA_TOKEN``), optional ``OBSKIT_GRAFANA_DASHBOARD_UID``;
    - Sentry (sentry-cli's variables): ``SENTRY_AUTH_TOKEN`` and ``SENTRY_ORG``, optional
      ``SENTRY_URL``, and ``OBSKIT_SENTRY_RELEASE`` when Sentry names releases otherwise;
    - Datadog: ``DD_API_KEY``, optional ``DD_SITE``, or ``OBSKIT_DATADOG_URL``.
    """
    env = os.environ if environ is None else environ
    found: list[Destination] = []
    problems: list[str] = []
    grafana = _first(env, "OBSKIT_GRAFANA_URL", "GRAFANA_URL")
    if grafana:
        try:
            found.append(
                Grafana(
                    grafana,
                    _first(env, "OBSKIT_GRAFANA_TOKEN", "GRAFANA_TOKEN"),
                    _first(env, "OBSKIT_GRAFANA_DASHBOARD_UID"),
                )
            )
        except ValueError as exc:
            problems.append(f"grafana: {exc}")
    token, org = _first(env, "SENTRY_AUTH_TOKEN"), _first(env, "SENTRY_ORG")
    if token or org:
        try:
            if not token:
                raise ValueError("SENTRY_ORG is set but SENTRY_AUTH_TOKEN is not")
            found.append(
                Sentry(
                    org,
                    token,
                    _first(env, "SENTRY_URL") or "https://sentry.io",
                    _first(env, "OBSKIT_SENTRY_RELEASE"),
                )
            )
        except ValueError as exc:
            problems.append(f"sentry: {exc}")
    key = _first(env, "DD_API_KEY")
    if key:
        try:
            found.append(
                Datadog(
                    key,
                    _first(env, "DD_SITE") or "datadoghq.com",
                    _first(env, "OBSKIT_DATADOG_URL"),
                )
            )
        except ValueError as exc:
            problems.append(f"datadog: {exc}")
    return found, problems
