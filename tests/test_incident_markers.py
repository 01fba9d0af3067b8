"""Deploy markers: each API's contract, a log event, counted failures, bounded time, no raise."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import time
import urllib.parse
from typing import Any

import pytest
from opentelemetry import trace

import obskit
import obskit.testing
from conftest import subprocess_env
from marker_support import api, dripping, hanging, refused
from obskit._selfcalls import suppressed
from obskit.incident import destinations, markers
from obskit.incident.destinations import Datadog, Grafana, Sentry
from obskit.incident.markers import Deployment, mark_deploy

STARTED, FINISHED = 1_780_000_000.25, 1_780_000_042.5


def _iso(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_grafana_annotation_contract() -> None:
    """Grafana gets POST /api/annotations with text, time/timeEnd in epoch ms, the deploy tags,
    the dashboard uid and the service account token as a bearer token."""
    answer = {"message": "Annotation added", "id": 7}
    with api(200, answer) as grafana:
        mark = mark_deploy(
            "1.4.2",
            "prod",
            description="checkout v2",
            url="https://ci.example/run/9",
            service="shop",
            revision="0123456789abcdef",
            started=STARTED,
            finished=FINISHED,
            destinations=[Grafana(grafana.url + "/", "glsa_secret", "obskit-slo-shop")],
        )
    assert [("grafana", True, "annotation 7")] == [
        (o.destination, o.ok, o.detail) for o in mark.outcomes
    ]
    (seen,) = grafana.seen
    assert "/api/annotations" == seen.path
    assert "Bearer glsa_secret" == seen.headers["authorization"]
    assert "application/json" == seen.headers["content-type"]
    body = seen.body
    assert {"time", "timeEnd", "tags", "text", "dashboardUID"} == set(body)
    assert int(STARTED * 1000) == body["time"]
    assert int(FINISHED * 1000) == body["timeEnd"]
    assert ["deploy", "service:shop", "env:prod", "version:1.4.2"] == body["tags"]
    assert "obskit-slo-shop" == body["dashboardUID"]
    assert (
        "shop 1.4.2 deployed to prod (0123456789ab): checkout v2 https://ci.example/run/9"
        == body["text"]
    )


def test_sentry_release_deploy_contract() -> None:
    """Sentry gets POST .../organizations/ORG/releases/VERSION/deploys/ (both escaped) with
    environment, name, url and ISO 8601 dateStarted/dateFinished."""
    with api(201, {"id": "1234", "environment": "prod"}) as sentry:
        mark = mark_deploy(
            "1.4.2+build/7",
            "prod",
            url="https://ci.example/run/9",
            service="shop",
            started=STARTED,
            finished=FINISHED,
            destinations=[Sentry("acme corp", "sntrys_token", sentry.url)],
        )
    assert [("sentry", True, "deploy 1234")] == [
        (o.destination, o.ok, o.detail) for o in mark.outcomes
    ]
    (seen,) = sentry.seen
    assert "/api/0/organizations/acme%20corp/releases/1.4.2%2Bbuild%2F7/deploys/" == seen.path
    assert "1.4.2+build/7" == urllib.parse.unquote(seen.path.split("/")[6])
    assert "Bearer sntrys_token" == seen.headers["authorization"]
    assert {"environment", "name", "url", "dateStarted", "dateFinished"} == set(seen.body)
    assert "prod" == seen.body["environment"]
    assert "shop 1.4.2+build/7" == seen.body["name"]
    assert "https://ci.example/run/9" == seen.body["url"]
    assert STARTED == pytest.approx(_iso(seen.body["dateStarted"]), abs=0.001)
    assert FINISHED == pytest.approx(_iso(seen.body["dateFinished"]), abs=0.001)


def test_sentry_release_name_may_differ_from_the_version() -> None:
    """A release Sentry names otherwise (``shop@1.4.2``) is addressed by that name."""
    with api(201, {"id": "1"}) as sentry:
        mark_deploy(
            "1.4.2",
            "prod",
            service="shop",
            destinations=[Sentry("acme", "t", sentry.url, release="shop@1.4.2")],
        )
    assert "/api/0/organizations/acme/releases/shop%401.4.2/deploys/" == sentry.seen[0].path


def test_datadog_deployment_contract() -> None:
    """Datadog gets POST /api/v2/dora/deployment with DD-API-KEY and data.attributes: service,
    started_at/finished_at in epoch ns, env, version, an id of 16-128 allowed characters and
    git {commit_sha, repository_url}."""
    answer = {"data": {"id": "dd-42", "type": "dora_deployment"}}
    with api(202, answer) as datadog:
        mark = mark_deploy(
            "1.4.2",
            "prod",
            service="shop checkout/eu",
            revision="66adc9350f2cc9b250b69abddab733dd55e1a588",
            repository_url="https://github.com/acme/shop",
            started=STARTED,
            finished=FINISHED,
            destinations=[Datadog("dd_key", url=datadog.url)],
        )
    assert [("datadog", True, "deployment dd-42")] == [
        (o.destination, o.ok, o.detail) for o in mark.outcomes
    ]
    (seen,) = datadog.seen
    assert "/api/v2/dora/deployment" == seen.path
    assert "dd_key" == seen.headers["dd-api-key"]
    assert {"data"} == set(seen.body)
    attributes = seen.body["data"]["attributes"]
    assert {"service", "started_at", "finished_at", "env", "version", "id", "git"} == set(
        attributes
    )
    assert "shop checkout/eu" == attributes["service"]
    assert int(STARTED * 1e9) == attributes["started_at"]
    assert int(FINISHED * 1e9) == attributes["finished_at"]
    assert ("prod", "1.4.2") == (attributes["env"], attributes["version"])
    assert re.fullmatch(r"[A-Za-z0-9._:-]{16,128}", attributes["id"])
    assert {
        "commit_sha": "66adc9350f2cc9b250b69abddab733dd55e1a588",
        "repository_url": "https://github.com/acme/shop",
    } == attributes["git"]


def test_datadog_site_and_ids() -> None:
    """DD_SITE picks the API host; without a repository there is no git object (Datadog
    requires both of its fields); ids stay within Datadog's length rules."""
    assert "https://api.datadoghq.eu" == Datadog("k", site="datadoghq.eu").url
    short = Deployment("a", "1", "p", STARTED, FINISHED, revision="abc")
    body = Datadog("k").request(short).body["data"]["attributes"]
    assert "git" not in body
    assert 16 <= len(short.id) <= 128
    long = Deployment("s" * 300, "1", "p", STARTED, FINISHED)
    assert 16 <= len(long.id) <= 128


def test_the_log_event_and_the_counts() -> None:
    """A mark writes one deployment.marked line with the deployment's fields and each
    destination's result, one warning per failure, and counts both results."""
    with obskit.testing.isolated(
        service_name="shop", service_version="2.0.0", environment="prod", vcs_revision="abc123"
    ) as cap:
        with api(200, {"id": 1}) as grafana:
            mark = mark_deploy(
                description="v2",
                destinations=[Grafana(grafana.url), Datadog("k", url=refused())],
                timeout=5.0,
            )
        events = [line for line in cap.logs if line.get("logger") == markers.LOGGER]
        counts = {
            result: cap.sample(
                "obskit_deploy_markers_total", {"destination": dest, "result": result}
            )
            for dest, result in (("grafana", "sent"), ("datadog", "failed"))
        }
    assert ("shop", "2.0.0", "prod", "abc123") == (
        mark.deployment.service,
        mark.deployment.version,
        mark.deployment.environment,
        mark.deployment.revision,
    )
    assert [markers.EVENT, markers.FAILED_EVENT] == [e["event"] for e in events]
    marked, failed = events
    assert "info" == marked["level"]
    assert "2.0.0" == marked["service.version"]
    assert "prod" == marked["deployment.environment.name"]
    assert "abc123" == marked["vcs.ref.head.revision"]
    assert "v2" == marked["deployment.description"]
    assert mark.deployment.id == marked["deployment.id"]
    assert {"grafana": "sent", "datadog": "failed"} == marked["deployment.markers"]
    assert "warning" == failed["level"]
    assert "datadog" == failed["destination"]
    assert {"sent": 1.0, "failed": 1.0} == counts


def test_a_hanging_refusing_or_dripping_destination_costs_at_most_its_timeout() -> None:
    """Destinations that hang, drip one byte at a time, refuse or answer 500 each fail within
    the timeout, all at once, without an exception; a working one still records."""
    timeout = 1.0
    with (
        hanging() as hang,
        dripping() as drip,
        api(500, {"error": "boom"}) as broken,
        api(200, {"id": 3}) as grafana,
    ):
        began = time.monotonic()
        mark = mark_deploy(
            "1",
            "prod",
            service="shop",
            destinations=[
                Datadog("k", url=hang),
                Sentry("acme", "t", drip),
                Datadog("k", url=refused()),
                Sentry("acme", "t", broken.url),
                Grafana(grafana.url),
            ],
            timeout=timeout,
        )
        elapsed = time.monotonic() - began
    assert elapsed < timeout + 1.0  # in parallel: not five timeouts in a row
    assert [False, False, False, False, True] == [o.ok for o in mark.outcomes]
    assert "no answer within 1 s" in mark.outcomes[0].detail
    assert "no answer within 1 s" in mark.outcomes[1].detail
    assert "HTTP 500" in mark.outcomes[3].detail
    assert all(o.seconds <= timeout + 0.5 for o in mark.outcomes)


def test_calls_are_obskit_own_work() -> None:
    """Each destination is called with instrumentation suppressed and no current span, even
    when the caller is inside a traced request."""
    seen: list[tuple[bool, bool]] = []

    class Probe(Grafana):
        def request(self, deployment: Deployment) -> destinations.Request:
            seen.append((suppressed(), trace.get_current_span().get_span_context().is_valid))
            return super().request(deployment)

    with obskit.testing.isolated(service_name="shop") as cap:
        with api(200, {"id": 1}) as grafana:
            with obskit.get_tracer().start_as_current_span("deploy-script"):
                mark_deploy("1", "prod", destinations=[Probe(grafana.url)])
            headers = grafana.seen[0].headers
        client = cap.sample("http_client_request_duration_seconds_count", {})
    assert [(True, False)] == seen
    assert "traceparent" not in headers
    assert client is None


def test_destinations_from_the_environment() -> None:
    """The environment configures Grafana, Sentry and Datadog by their usual variables; a
    misconfigured one is a problem to report, not an exception."""
    found, problems = destinations.from_environment(
        {
            "GRAFANA_URL": "https://grafana.example/",
            "OBSKIT_GRAFANA_TOKEN": "g",
            "SENTRY_AUTH_TOKEN": "s",
            "SENTRY_ORG": "acme",
            "DD_API_KEY": "d",
            "DD_SITE": "us5.datadoghq.com",
        }
    )
    assert [] == problems
    assert ["grafana", "sentry", "datadog"] == [d.name for d in found]
    assert "https://grafana.example" == found[0].url
    assert "https://sentry.io" == found[1].url
    assert "https://api.us5.datadoghq.com" == found[2].url
    found, problems = destinations.from_environment(
        {"OBSKIT_GRAFANA_URL": "grafana.example", "SENTRY_ORG": "acme"}
    )
    assert [] == found
    assert [
        "grafana: the Grafana URL must be an http:// or https:// URL, not 'grafana.example'",
        "sentry: SENTRY_ORG is set but SENTRY_AUTH_TOKEN is not",
    ] == problems
    assert ([], []) == destinations.from_environment({})


def test_mark_deploy_never_raises_on_a_broken_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misconfigured destination fails the marker, not the caller; the log event is written."""
    monkeypatch.setenv("OBSKIT_GRAFANA_URL", "not a url")
    with obskit.testing.isolated(service_name="shop") as cap:
        mark = obskit.mark_deploy("1", "prod")
        events = [line["event"] for line in cap.logs if line.get("logger") == markers.LOGGER]
    assert [("grafana", False)] == [(o.destination, o.ok) for o in mark.outcomes]
    assert [markers.EVENT, markers.FAILED_EVENT] == events


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", "deploy", "mark", *args],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_records_and_exits_zero_when_a_destination_fails() -> None:
    """`obskit deploy mark` writes the JSON event on stdout, says on stderr what each destination
    answered, and exits 0 even though one of them refused."""
    with api(200, {"id": 11}) as grafana:
        result = _cli(
            {
                "OBSKIT_GRAFANA_URL": grafana.url,
                "OBSKIT_GRAFANA_TOKEN": "glsa",
                "DD_API_KEY": "k",
                "OBSKIT_DATADOG_URL": refused(),
                "GITHUB_SHA": "feedface",
            },
            "--service",
            "shop",
            "--version",
            "2.0.0",
            "--environment",
            "prod",
            "--started",
            "2026-05-04T12:00:00Z",
            "--timeout",
            "2",
        )
        sent: dict[str, Any] = grafana.seen[0].body
    assert 0 == result.returncode, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    event = next(line for line in lines if line["event"] == markers.EVENT)
    assert ("shop", "2.0.0", "prod", "feedface") == (
        event["service.name"],
        event["service.version"],
        event["deployment.environment.name"],
        event["vcs.ref.head.revision"],
    )
    assert "2026-05-04T12:00:00.000Z" == event["deployment.started"]
    assert 1_777_896_000_000 == sent["time"]
    assert "grafana  sent" in result.stderr
    assert "datadog  FAILED" in result.stderr
    assert "1 of 2 destinations did not record the deployment" in result.stderr
    assert "glsa" not in result.stdout + result.stderr


def test_cli_without_destinations_logs_only() -> None:
    """With nothing configured the marker is the log event alone, exit 0."""
    result = _cli({}, "--service", "shop", "--version", "1", "--environment", "dev")
    assert 0 == result.returncode, result.stderr
    assert '"event":"deployment.marked"' in result.stdout
    assert "no destination configured" in result.stderr
