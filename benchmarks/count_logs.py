"""Instructions per log line, counted by valgrind: redaction's cost, and before/after a change.

Usage: ``.venv/bin/python benchmarks/count_logs.py [--against DIR]`` (about 1 minute). Needs
``valgrind`` (a measuring tool of this benchmark only). ``--against DIR`` also counts the lines
with the obskit of another tree (``DIR`` holds ``src/obskit``; e.g. ``git worktree add
/tmp/before main``), for the same lines before a change.

Each shape is one info line through obskit's fixed JSON chain to ``/dev/null``, inside a bound
correlation and tenant id: ``plain`` is ``bench_logs.py``'s line (two numbers); ``heavier`` adds a
sentence, a URL with a query and a headers dict, the same on every line; ``distinct URLs`` gives
every line its own URL, so nothing is remembered from line to line. Each is counted with the
redaction policy as configured and with secret replacement off (bounds only), in two processes
of ``FEW`` and ``MANY`` lines: the difference of their totals divided by ``MANY - FEW`` is one
line, start-up cancelled out. Instructions do not depend on the neighbours' load (``bench_logs.py``
times the same lines, and moves with it).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEW, MANY = 1000, 4000
TIMEOUT_S = 600.0
SHAPES = ("plain", "heavier", "distinct URLs")

_RUN = """
import os, sys
import obskit
from obskit.logs import setup as log_setup
shape, lines, secrets = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
obskit.init(service_name="bench", log_format="json", log_stream="stderr", metrics=False,
            tracing=False)
log_setup.sink().stream = open(os.devnull, "wb")
if not secrets:
    from obskit.logs import redaction
    log_setup._writer.enricher.redactor = redaction.Redactor(secrets=False)
log = obskit.get_logger("bench")
url = "https://api.example.com/v1/orders?page=2&sort=asc"
headers = {"accept": "application/json", "user-agent": "python-httpx/0.28.1"}
with obskit.bound(correlation_id="c0ffee", tenant_id="acme"):
    for i in range(lines):
        if shape == "plain":
            log.info("order.placed", order_id=1234, amount=9.99)
        elif shape == "heavier":
            log.info("calling the payment service", url=url, status=200, headers=headers)
        else:
            log.info("calling the payment service",
                     url=f"https://api.example.com/v1/orders/{i}?page=2", status=200,
                     headers=headers)
"""


def _instructions(src: Path, shape: str, lines: int, secrets: bool) -> int:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, "-c", _RUN, shape, str(lines), "on" if secrets else "off"]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT_S, check=True)
    found = re.search(rb"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-500:]!r}")
    return int(found.group(1).replace(b",", b""))


def per_line(src: Path, shape: str, secrets: bool) -> float:
    """Steady instructions per line (two processes, ``FEW`` and ``MANY`` lines)."""
    with ThreadPoolExecutor(2) as pool:
        few = pool.submit(_instructions, src, shape, FEW, secrets)
        many = pool.submit(_instructions, src, shape, MANY, secrets)
        return (many.result() - few.result()) / (MANY - FEW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", type=Path, help="another tree (with src/obskit) to count")
    args = parser.parse_args()
    print(f"instructions per info line (valgrind), Python {sys.version.split()[0]}")
    print(f"{'shape':16} {'redaction on':>13} {'off':>9} {'redaction':>10}", end="")
    print(f" {'--against':>10}" if args.against else "")
    for shape in SHAPES:
        on = per_line(ROOT / "src", shape, True)
        off = per_line(ROOT / "src", shape, False)
        row = f"{shape:16} {on:13,.0f} {off:9,.0f} {on - off:10,.0f}"
        if args.against:
            row += f" {per_line(args.against / 'src', shape, True):10,.0f}"
        print(row)


if __name__ == "__main__":
    main()
