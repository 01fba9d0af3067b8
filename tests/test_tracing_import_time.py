"""A tracer taken at import time, before ``init()``, follows the live tracing, re-init and fork."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import obskit
import obskit.testing
from conftest import PYTHON, subprocess_env
from obskit._identity import instance_id
from test_use_workers import free_port

# Taken the way a module does at import: before any init() of this test run.
TRACER = obskit.get_tracer("tests.import_time", "1.0")


def test_a_tracer_taken_before_init_records_once_obskit_is_initialised() -> None:
    """Spans of a tracer taken before init() are no-ops before it and real spans after it,
    named by the tracer's own instrumentation scope."""
    assert not TRACER.start_span("before").is_recording()
    exporter = InMemorySpanExporter()
    with obskit.testing.isolated(span_exporter=exporter, baseline_ratio=0.0):
        with TRACER.start_as_current_span("failing") as span:
            span.set_status(Status(StatusCode.ERROR))
        obskit.testing.flush()
    (exported,) = exporter.get_finished_spans()
    assert "failing" == exported.name
    assert ("tests.import_time", "1.0") == (
        exported.instrumentation_scope.name,
        exported.instrumentation_scope.version,
    )


def test_a_tracer_taken_before_init_follows_a_reinit() -> None:
    """After a re-init with another exporter and service name, the same tracer's spans go to
    the new one."""
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    obskit.init(service_name="first", span_exporter=first, sampling="all", log_stream="stderr")
    TRACER.start_span("one").end()
    obskit.init(service_name="second", span_exporter=second, sampling="all", log_stream="stderr")
    TRACER.start_span("two").end()
    obskit.testing.flush()
    obskit.shutdown(timeout=2.0)
    assert ["one"] == [s.name for s in first.get_finished_spans()]
    (two,) = second.get_finished_spans()
    assert ("two", "second") == (two.name, two.resource.attributes["service.name"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_tracer_taken_before_a_fork_traces_into_the_child(tmp_path: Path) -> None:
    """In a forked child the tracer's spans reach the child's sampler: they carry the child's
    service.instance.id and the child's flush exports them."""
    sink = tmp_path / "spans.jsonl"
    obskit.init(trace_sink=str(sink), baseline_ratio=0.0, log_stream="stderr", collectors="none")
    parent_id = instance_id()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: trace, flush, report its instance id, leave
        code = 1
        try:
            with (
                TRACER.start_as_current_span("child-request"),
                TRACER.start_as_current_span("child-error") as span,
            ):
                span.set_status(Status(StatusCode.ERROR))
            obskit.testing.flush(5.0)
            os.write(write_end, instance_id().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_id = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert 0 == os.waitstatus_to_exitcode(status)
    obskit.shutdown(timeout=2.0)
    records = {r["name"]: r for r in map(json.loads, sink.read_text().splitlines())}
    assert {"child-request", "child-error"} <= set(records)
    assert child_id != parent_id
    assert {child_id} == {records[n]["service_instance"] for n in ("child-request", "child-error")}


APP = """
import os

import obskit
from opentelemetry.trace import Status, StatusCode

tracer = obskit.get_tracer(__name__)  # at import time, before init()

obskit.init(
    service_name="preload", trace_sink={sink!r}, baseline_ratio=0.0, collectors="none",
    log_stream="stderr",
)


def failing(environ, start_response):
    with tracer.start_as_current_span("charge") as span:
        span.set_status(Status(StatusCode.ERROR, "card declined"))
    start_response("500 Internal Server Error", [("x-worker", str(os.getpid()))])
    return [b"failed"]


app = obskit.WSGIMiddleware(failing)
"""


def _request(port: int) -> str | None:
    """One request; the pid of the worker that answered (None while the server is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pay", timeout=5):
            return None  # not reached: the application answers 500
    except urllib.error.HTTPError as error:
        with error:
            return error.headers.get("x-worker")
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gunicorn_preload_workers_export_whole_error_traces_under_their_own_ids(
    tmp_path: Path,
) -> None:
    """Under gunicorn --preload -w 2, 40 errored requests: every exported error span has its
    SERVER root in the same trace, from the same worker, and each worker has its own
    service.instance.id."""
    sink = tmp_path / "spans.jsonl"
    (tmp_path / "preload_app.py").write_text(textwrap.dedent(APP.format(sink=str(sink))))
    port = free_port()
    env = subprocess_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path), subprocess_env()["PYTHONPATH"]])
    )
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-w", "2", "--preload", "-b", f"127.0.0.1:{port}",
         "preload_app:app"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    workers: list[str] = []
    try:
        deadline = time.monotonic() + 60  # bounds the wait for the server and the requests
        while time.monotonic() < deadline and (len(workers) < 40 or len(set(workers)) < 2):
            worker = _request(port)
            if worker is None:
                time.sleep(0.2)
            else:
                workers.append(worker)
            if len(workers) >= 400:
                break  # one worker took them all: fails below, with the log
    finally:
        server.terminate()  # workers flush their kept traces as they exit
        server.wait(30)
        log.close()
    gunicorn_log = (tmp_path / "gunicorn.log").read_text()[-3000:]
    assert len(workers) >= 40, gunicorn_log
    assert 2 == len(set(workers)), gunicorn_log
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in map(json.loads, sink.read_text().splitlines()):
        traces[record["trace_id"]].append(record)
    errors = [r for spans in traces.values() for r in spans if r["name"] == "charge"]
    assert len(workers) == len(errors), gunicorn_log
    for error in errors:
        (root,) = [r for r in traces[error["trace_id"]] if r["kind"] == "SERVER"]
        assert error["parent_span_id"] == root["span_id"]
        assert error["service_instance"] == root["service_instance"]
    assert 2 == len({error["service_instance"] for error in errors})
