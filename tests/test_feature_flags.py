"""The OpenFeature hook: variants (never values) on spans, logs and allowed metrics; judged."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from prometheus_client import generate_latest

import obskit
import obskit.testing
from obskit.canary.judge import Judge, JudgeOptions
from obskit.feature_flags import EVENT, ObskitHook
from web_support import http_scope

SECRET_VALUE = "postgres://user:hunter2@db/prod"


def _split(flag: InMemoryFlag[Any], ctx: EvaluationContext) -> FlagResolutionDetails[Any]:
    """A 50/50 percentage rollout on the targeting key."""
    variant = "on" if hash(ctx.targeting_key) % 2 else "off"
    return FlagResolutionDetails(flag.variants[variant], variant=variant, reason=Reason.SPLIT)


@pytest.fixture
def client() -> Iterator[Any]:
    """An OpenFeature client with two flags, the hook allowing only ``new-checkout`` on metrics."""
    flags = {
        "new-checkout": InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=_split),
        "db-url": InMemoryFlag("primary", {"primary": SECRET_VALUE}),
    }
    api.set_provider(InMemoryProvider(flags))
    api.add_hooks([ObskitHook(metric_flags={"new-checkout"})])
    try:
        yield api.get_client()
    finally:
        api.clear_hooks()
        api.clear_providers()


def _app(client: Any, fail_on: str | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        user = dict(scope["headers"]).get(b"x-user", b"u").decode()
        details = client.get_boolean_details("new-checkout", False, EvaluationContext(user))
        client.get_string_value("db-url", "")
        obskit.get_logger("shop").info("checkout.done")
        if fail_on is not None and details.variant == fail_on and random.random() < 0.3:
            raise RuntimeError("new checkout broke")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return obskit.ASGIMiddleware(app)


async def _requests(app: Any, count: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return

    for n in range(count):
        scope = http_scope("/checkout", {"x-user": f"user-{n}", "x-tenant-id": "acme"})
        try:
            await app(scope, receive, send)
        except RuntimeError:
            pass


def test_variant_on_span_and_log_lines_never_the_value(client: Any, tmp_path: Any) -> None:
    """Each evaluation is a span event and a log field with the variant; no value anywhere."""
    with obskit.testing.isolated(
        service_name="t", trace_sink=str(tmp_path / "s.jsonl"), baseline_ratio=1.0
    ) as env:
        with obskit.testing.capture_spans() as spans:
            asyncio.run(_requests(_app(client), 3))
            obskit.testing.flush()
        line = next(entry for entry in env.logs if entry.get("event") == "checkout.done")
        assert line["feature_flag.new-checkout"] in ("on", "off")
        assert "primary" == line["feature_flag.db-url"]
        events = [e for s in spans for e in s.events if e.name == EVENT]
        assert events, "no feature_flag.evaluation span event"
        keys = {e.attributes["feature_flag.key"] for e in events if e.attributes}
        assert {"new-checkout", "db-url"} == keys
        text = repr([dict(e.attributes or {}) for e in events]) + repr(env.logs)
        assert SECRET_VALUE not in text
        assert "hunter2" not in generate_latest(env.registry).decode()


def test_only_allowed_flags_reach_metric_labels(client: Any) -> None:
    """new-checkout (allowed) has its variants on metrics, db-url (not allowed) none."""
    with obskit.testing.isolated(service_name="t") as env:
        asyncio.run(_requests(_app(client), 20))
        text = generate_latest(env.registry).decode()
        assert 'feature_flag_key="new-checkout"' in text
        assert 'feature_flag_key="db-url"' not in text
        on = env.sample(
            "obskit_feature_flag_request_duration_seconds_count",
            {
                "feature_flag_key": "new-checkout",
                "feature_flag_variant": "on",
                "http_route": "__unmatched__",  # a bare ASGI app: no framework route
                "error_type": "",
                "tenant_id": "acme",
            },
        )
        assert on is not None
        assert 0 < on < 20


def test_flag_changes_are_logged_once_per_change_for_the_timeline(client: Any) -> None:
    """The feature_flag.evaluation log event appears for a variant new to the process, once."""
    with obskit.testing.isolated(service_name="t") as env:
        for _ in range(5):
            client.get_string_value("db-url", "")
        events = [e for e in env.logs if e.get("event") == EVENT]
        assert 1 == len(events)
        assert "db-url" == events[0]["feature_flag.key"]
        assert "primary" == events[0]["feature_flag.result.variant"]
        assert "static" == events[0]["feature_flag.result.reason"]


def test_a_percentage_rollout_is_judged_variant_against_variant(client: Any) -> None:
    """Requests on variant "on" failing 30% of the time fail the rollout, judged on the flag."""
    from obskit.canary.api import plan
    from obskit.canary.checks import needed
    from obskit.canary.sources import ScrapeSource
    from obskit.metrics.promql import parse_matchers

    random.seed(4)
    with obskit.testing.isolated(service_name="t"):
        server = obskit.start_metrics_server(0)
        try:
            url = f"http://127.0.0.1:{server.port}/metrics"
            off = parse_matchers('{feature_flag_key="new-checkout",feature_flag_variant="off"}')
            on = parse_matchers('{feature_flag_key="new-checkout",feature_flag_variant="on"}')
            specs = plan(off, on)
            assert all(s.role == "gate" for s in specs)
            source = ScrapeSource(
                [url], [url], needed(specs), baseline_matchers=off, canary_matchers=on
            )
            judge = Judge(specs, JudgeOptions(min_requests=50))
            source.scrape()
            asyncio.run(_requests(_app(client, fail_on="on"), 600))
            counts = source.scrape()
            assert counts is not None
            judge.observe(*counts)
        finally:
            server.close()
    report = judge.report()
    assert "FAIL" == report.verdict, report.table()
    assert ("error rate", {}) in [(c.metric, c.segment) for c in report.failed()]
