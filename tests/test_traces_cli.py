"""`obskit traces` reads the local trace file obskit wrote and prints kept traces as trees."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import obskit
import obskit.testing
from obskit import cli

HEADING = re.compile(r"^trace ([0-9a-f]{32})  (\S+ \S+) UTC  ([\d.]+) ms  kept: (\w+)", re.M)


async def _order(request: Request) -> Response:
    await asyncio.sleep(0.4)  # slow: kept by the slow rule (threshold 250 ms)
    return PlainTextResponse("ok")


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


@obskit.red(name="ledger.write")
def _write() -> None:
    time.sleep(0.002)


async def _pay(request: Request) -> Response:
    _write()
    raise ValueError("declined")


def _serve(paths: list[str]) -> None:
    app = obskit.ASGIMiddleware(
        Starlette(
            routes=[
                Route("/orders/{order_id}", _order),
                Route("/boom", _boom),
                Route("/pay", _pay),
            ]
        )
    )

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in paths:
                await client.get(path)
                await asyncio.sleep(0.005)  # distinct start times: a stable newest-first order

    asyncio.run(go())


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    """A trace file written by obskit's own local sink: one slow, two error traces."""
    path = tmp_path / "kept.jsonl"
    obskit.init(
        service_name="shop",
        trace_sink=str(path),
        slow_threshold_ms=250,
        baseline_ratio=0.0,
        registry=CollectorRegistry(),
        log_stream="stderr",
    )
    _serve(["/orders/7", "/boom", "/pay"])
    obskit.shutdown()
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["traces", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prints_every_kept_trace_newest_first_as_a_tree(
    trace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three kept traces, newest first, each with its rule, duration and indented child spans."""
    code, out, _ = _run(capsys, str(trace_file))
    assert 0 == code
    headings = HEADING.findall(out)
    assert ["error", "error", "slow"] == [h[3] for h in headings]
    assert [] == [h for h in headings if float(h[2]) <= 0]
    starts = [h[1] for h in headings]
    assert sorted(starts, reverse=True) == starts
    assert "3 kept traces" in out
    # /pay's trace: its SERVER span, and the decorated call one level further in.
    pay = out.split("route /pay", 1)[1].split("\ntrace ", 1)[0]
    indent = {
        label: len(line) - len(line.lstrip())
        for line in pay.splitlines()
        for label in ("shop: GET /pay (ERROR)", "shop: ledger.write")
        if line.lstrip().startswith(label)
    }
    assert 2 == len(indent), pay
    assert indent["shop: GET /pay (ERROR)"] + 2 == indent["shop: ledger.write"]
    assert re.search(r"shop: ledger.write +\| +#+ +\| +[\d.]+ ms", pay), pay


def test_filters_by_rule_route_and_trace_id(
    trace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rule, --route (with wildcards) and --trace-id (a prefix) each narrow the listing."""
    _, out, _ = _run(capsys, str(trace_file), "--rule", "slow")
    assert ["slow"] == [h[3] for h in HEADING.findall(out)]
    assert "route /orders/{order_id}" in out
    _, out, _ = _run(capsys, str(trace_file), "--route", "/b*")
    assert ["error"] == [h[3] for h in HEADING.findall(out)]
    assert "route /boom" in out
    wanted = HEADING.findall(out)[0][0]
    _, out, _ = _run(capsys, str(trace_file), "--trace-id", wanted[:8])
    assert [wanted] == [h[0] for h in HEADING.findall(out)]


def test_filters_by_time_and_limits(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since/--until take durations ago or ISO times; --limit keeps the newest."""
    _, out, _ = _run(capsys, str(trace_file), "--since", "1h")
    assert 3 == len(HEADING.findall(out))
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    _, out, _ = _run(capsys, str(trace_file), "--until", past)
    assert [] == HEADING.findall(out)
    assert "0 match" in out
    _, out, _ = _run(capsys, str(trace_file), "--limit", "1")
    assert 1 == len(HEADING.findall(out))
    with pytest.raises(SystemExit):
        cli.main(["traces", str(trace_file), "--since", "yesterday-ish"])
    assert "neither a duration ago" in capsys.readouterr().err


def test_reads_the_rotated_file_and_joins_split_traces(
    trace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spans of one trace split between FILE.1 and FILE are shown as one trace."""
    lines = trace_file.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    pay = next(r["trace_id"] for r in records if r["name"] == "GET /pay")
    first = [line for line in lines if json.loads(line)["name"] == "ledger.write"]
    rest = [line for line in lines if line not in first]
    Path(f"{trace_file}.1").write_text("\n".join(first) + "\nnot json\n")
    trace_file.write_text("\n".join(rest) + "\n")
    _, out, _ = _run(capsys, str(trace_file), "--trace-id", pay)
    assert 1 == len(HEADING.findall(out))
    assert "ledger.write" in out
    assert "(1 unreadable lines skipped)" in out


def test_without_a_file_reads_the_configured_one(
    trace_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no FILE, the trace file of the environment's settings is read."""
    monkeypatch.setenv("OBSKIT_TRACE_SINK", str(trace_file))
    code, out, _ = _run(capsys)
    assert 0 == code
    assert 3 == len(HEADING.findall(out))


def test_a_missing_file_is_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No trace file: exit status 2 and the path looked for."""
    missing = tmp_path / "none.jsonl"
    code, _, err = _run(capsys, str(missing))
    assert 2 == code
    assert f"no trace file {missing}" in err
