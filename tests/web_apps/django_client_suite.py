"""A Django project's own tests, written the usual way with ``django.test.Client`` and
``AsyncClient``, run against the test project (``djproj``, obskit.DjangoMiddleware first in its
MIDDLEWARE). Prints what obskit recorded, as one JSON object, for the test that runs this file."""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

import django
from django.test import AsyncClient, Client

import obskit.testing


def user_tests() -> None:
    """What the project's test module would assert."""
    client = Client()
    assert 200 == client.get("/5/update").status_code
    assert {"year": 2024} == client.get("/articles/2024/").json()
    assert 404 == client.get("/nope").status_code
    assert b"0\n1\n2\n" == b"".join(client.get("/stream/").streaming_content)  # type: ignore[attr-defined]
    assert 200 == client.head("/5/update").status_code
    quiet = Client(raise_request_exception=False)
    assert 500 == quiet.get("/boom/").status_code

    async def async_tests() -> None:
        assert 200 == (await AsyncClient().get("/6/update")).status_code

    asyncio.run(async_tests())


def main() -> None:
    django.setup()
    with obskit.testing.isolated() as capture:
        user_tests()
        summary = {
            "access": [
                [line["path"], line["status"], line["route"], line.get("error_type", "")]
                for line in capture.logs
                if line.get("logger") == "obskit.access"
            ],
            "red": [
                [
                    sample.labels["http_request_method"],
                    sample.labels["http_route"],
                    sample.labels["http_response_status_code"],
                    sample.value,
                ]
                for metric in capture.registry.collect()
                if metric.name == "http_server_request_duration_seconds"
                for sample in metric.samples
                if sample.name.endswith("_count")
            ],
            "undecided": capture.sample("obskit_tail_buffered_traces"),
        }
    sys.stdout.write("SUMMARY " + json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
