"""Bad input to ``obskit slo|canary|incident|deploy`` is one clear line on stderr and exit 2.

Every case runs the real command line in process (a traceback would fail the test as an
exception); a Prometheus that cannot be reached is a loopback port nothing listens on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marker_support import refused
from obskit.cli import main

SHOP = str(Path(__file__).parent / "slo" / "shop.yml")
ARMS = ["--baseline", '{service_version="1"}', "--canary", '{service_version="2"}']


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of broken SPEC files and modules, made the working directory."""
    (tmp_path / "broken.yml").write_text("a: [1\n")
    (tmp_path / "empty.yml").write_text("")
    (tmp_path / "list.yml").write_text("- 1\n- 2\n")
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "folder.yml").mkdir()
    (tmp_path / "minimal.yml").write_text("apiVersion: openslo/v1\nkind: SLO\n")
    (tmp_path / "bomb.yml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for n, p in zip("bcdef", "abcde", strict=True)
        )
    )
    short = "apiVersion: obskit/v1\nkind: Objectives\nowner: payments\nobjectives:\n"
    (tmp_path / "target.yml").write_text(
        short + "  - {name: a, availability: {routes: [/x]}, target: lots}\n"
    )
    (tmp_path / "twice.yml").write_text(
        short
        + "  - {name: a, availability: {routes: [/x]}, target: 99%}\n"
        + "  - {name: a, availability: {routes: [/y]}, target: 99%}\n"
    )
    (tmp_path / "spec_raises.py").write_text("raise RuntimeError('broken at import')\n")
    (tmp_path / "spec_numbers.py").write_text("objectives = [1, 2]\n")
    (tmp_path / "spec_factory.py").write_text("def objectives(required):\n    return []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


SLO_CASES = [
    (["slo", "rules", "missing.yml"], "missing.yml: no such file"),
    (["slo", "rules", "broken.yml"], "broken.yml: line 2, column 1: not valid YAML"),
    (["slo", "rules", "empty.yml"], "empty.yml: no YAML document"),
    (["slo", "rules", "list.yml"], "apiVersion is openslo/v1"),
    (["slo", "rules", "binary.yml"], "binary.yml: cannot read it"),
    (["slo", "rules", "folder.yml"], "folder.yml: a directory"),
    (["slo", "rules", "minimal.yml"], "missing required field 'metadata'"),
    (["slo", "rules", "bomb.yml"], "more than 100000 values"),
    (["slo", "rules", "target.yml"], "target.yml: document 1, line 5: objectives[0]: objective"),
    (["slo", "rules", "twice.yml"], "twice.yml: document 1, line 1: (the document): objective"),
    (["slo", "rules", "no_such_module:objectives"], "cannot import no_such_module"),
    (["slo", "rules", "spec_raises:objectives"], "importing spec_raises raised RuntimeError"),
    (["slo", "rules", "spec_numbers:objectives"], "not an obskit.slo.Objective"),
    (["slo", "rules", "spec_factory:objectives"], "calling objectives() raised TypeError"),
    (["slo", "rules", "spec_numbers:nothing"], "has no attribute nothing"),
    (["slo", "rules", SHOP, "--interval", "0s"], "--interval: not a positive duration"),
    (["slo", "rules", SHOP, "--interval", "soon"], "--interval: not a duration"),
    (["slo", "rules", SHOP, "-o", "empty.yml/rules.yml"], "empty.yml is not a directory"),
    (["slo", "test", SHOP, "-o", "empty.yml"], "empty.yml is not a directory"),
    (["slo", "runbooks", SHOP, "-o", "empty.yml"], "empty.yml is not a directory"),
    (["slo", "alertmanager", SHOP, "--receiver", "nobody"], "expected OWNER=NAME"),
    (["slo", "dashboard", "broken.yml"], "not valid YAML"),
    (["slo", "dashboard", SHOP, "--datasource", ""], "--datasource is the uid"),
    (["slo", "alertmanager", SHOP, "--default-receiver", " "], "--default-receiver names"),
    (["slo", "test", SHOP, "-o", "out", "--rules-name", ""], "--rules-name is a file name"),
    (["slo", "test", SHOP, "-o", "out", "--rules-name", "../x.yml"], "--rules-name is a file"),
]


@pytest.mark.parametrize(("argv", "said"), SLO_CASES, ids=[" ".join(c[0][1:3]) for c in SLO_CASES])
def test_slo_commands_refuse_bad_input_in_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    """A missing, broken, empty, hostile or mistyped SPEC or option: exit 2 and one line."""
    assert 2 == main(argv)
    err = capsys.readouterr().err.strip()
    assert said in err
    assert 1 == len(err.splitlines())


def _canary_cases(prometheus: str) -> list[tuple[list[str], str]]:
    judge = ["canary", "judge", "--prometheus", prometheus, *ARMS, "--since", "10m"]
    watch = ["canary", "watch", "--baseline-metrics", prometheus, "--canary-metrics", prometheus]
    serve = ["canary", "serve", "--prometheus", prometheus]
    return [
        ([*judge, "--step", "20m"], "step at most since"),
        ([*judge, "--step", "1ms"], "at most 10999"),
        ([*judge, "--timeout", "nan"], "a timeout is a positive number of seconds"),
        ([*judge, "--alpha", "2"], "alpha must be between 0 and 1"),
        ([*judge, "--min-requests", "0"], "min_requests must be >= 1"),
        ([*judge, "--tolerance", "errors=lots"], "'lots' is not a number"),
        ([*judge, "--by", "tenant id"], "not a Prometheus label name: 'tenant id'"),
        ([*judge, "--since", "200y"], "at most 100 years"),
        (judge, f"cannot ask Prometheus at {prometheus}: GET /api/v1/query_range:"),
        (["canary", "judge", "--prometheus", "prom:9090", *ARMS, "--since", "5m"], "http://"),
        (
            [
                "canary",
                "judge",
                "--prometheus",
                prometheus,
                "--baseline",
                "{v=",
                "--canary",
                "{}",
                "--since",
                "5m",
            ],
            "not a label matcher list",
        ),
        ([*watch, "--interval", "0", "--max-duration", "1"], "interval must be positive"),
        ([*watch, "--interval", "2", "--max-duration", "1"], "max_duration at least one"),
        ([*watch, "--interval", "1", "--max-duration", "inf"], "max_duration at least one"),
        (
            [*watch, "--interval", "1", "--max-duration", "2", "--canary-selector", "{a="],
            "not a label matcher list",
        ),
        ([*watch, "--interval", "1", "--max-duration", "2"], "cannot scrape an arm's /metrics: "),
        ([*serve, "--port", "70000"], "--port is from 0 to 65535"),
        ([*serve, "--since", "a while"], "not a duration"),
        ([*serve, "--timeout", "0"], "--timeout is a positive number"),
        ([*serve, "--addr", "no-such-host.invalid", "--port", "0"], "cannot listen on"),
        (["canary", "serve", "--prometheus", "file:///etc/passwd"], "http:// or https://"),
    ]


def test_canary_commands_refuse_bad_input_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad option, and an unreachable source, of judge, watch and serve: exit 2, one line."""
    prometheus = refused()
    for argv, said in _canary_cases(prometheus):
        assert (2, argv) == (main(argv), argv)
        err = capsys.readouterr().err.strip()
        assert said in err, argv
        assert 1 == len(err.splitlines()), argv


def test_incident_and_deploy_commands_refuse_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad times, steps, files and an unreachable Prometheus: exit 2, one line naming it."""
    prometheus = refused()
    timeline = ["incident", "timeline", "--prometheus", prometheus, "--from", "now-1h"]
    cases = [
        (["incident", "timeline", "--prometheus", prometheus, "--from", "soon"], "not a time"),
        ([*timeline, "--to", "now-2h"], "must be before --to"),
        ([*timeline, "--step", "0s"], "not a positive duration"),
        ([*timeline, "--baseline", "long"], "not a duration"),
        ([*timeline, "--step", "1s", "--baseline", "30d"], "at most 10999 (a longer --step)"),
        ([*timeline, "--logs", str(tmp_path / "none.log")], "none.log: No such file"),
        ([*timeline, "--logs", str(tmp_path)], "Is a directory"),
        ([*timeline, "--traces", str(tmp_path / "none.jsonl")], "none.jsonl: No such file"),
        ([*timeline, "--exemplars", "-1"], "--exemplars is not negative"),
        ([*timeline, "-o", str(tmp_path / "no" / "t.md")], "cannot write"),
        ([*timeline, "-o", str(tmp_path)], "cannot write"),
        ([*timeline, "--timeout", "-1"], "--timeout is a positive number"),
        (["incident", "timeline", "--prometheus", prometheus, "--from", "1e400"], "1970 and 9999"),
        (timeline, f"cannot ask Prometheus at {prometheus}: GET /api/v1/query:"),
        (
            ["incident", "postmortem", "--prometheus", "prometheus:9090", "--from", "now-1h"],
            "--prometheus must be an http",
        ),
        (["deploy", "mark", "--started", "yesterday"], "--started: not a time"),
        (["deploy", "mark", "--timeout", "nan"], "--timeout must be a positive number"),
    ]
    for argv, said in cases:
        assert (2, argv) == (main(argv), argv)
        err = capsys.readouterr().err.strip()
        assert said in err, argv
        assert 1 == len(err.splitlines()), argv
